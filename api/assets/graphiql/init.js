// Bootstrap of the GraphiQL page of auth-api (served from the binary, see api/src/graphiql.rs).
//
// Loaded after React, ReactDOM and GraphiQL (UMD globals). It mounts GraphiQL with:
// - a fetcher that POSTs JSON to the page's own URL (the GraphQL endpoint) with the headers
//   of GraphiQL's headers pane, and runs subscriptions over graphql-transport-ws at
//   `<endpoint>/ws` (the headers go in the connection_init payload);
// - the example document (sign up, sign in, me, session events, sessions, refresh, sign out);
// - a headers pane prefilled with {"X-Tenant": "default"} (headers are not persisted);
// - a toolbar button that, once a result carried tokens, puts the access token into the
//   Authorization header and the refresh token into the variables.
(function () {
  'use strict';

  // GraphiQL's menus and dialogs (Radix, react-remove-scroll) insert a <style> element while
  // open; it takes its nonce from this global (get-nonce). The page's CSP allows only that
  // nonce for inline styles; the server puts a fresh one in <meta name="csp-nonce">.
  var nonceMeta = document.querySelector('meta[name="csp-nonce"]');
  if (nonceMeta && nonceMeta.content) window.__webpack_nonce__ = nonceMeta.content;

  var React = window.React;
  var GraphiQL = window.GraphiQL;
  var root = document.getElementById('graphiql');
  if (!React || !window.ReactDOM || !GraphiQL || !root) {
    if (root) root.textContent = 'GraphiQL failed to load its scripts.';
    return;
  }
  var h = React.createElement;
  var GraphQL = GraphiQL.GraphQL;
  var UI = GraphiQL.React;

  var endpoint = window.location.pathname;
  var wsEndpoint =
    (window.location.protocol === 'https:' ? 'wss://' : 'ws://') +
    window.location.host +
    endpoint.replace(/\/$/, '') +
    '/ws';

  var EXAMPLE = [
    '# auth-api: run the operations top to bottom with the ▶ button (it asks which one).',
    '#',
    '# 1. SignUp (or SignIn if the account exists) returns tokens.',
    '# 2. Click the key button (editor toolbar, under copy): it puts the access token into',
    '#    the Authorization header and the refresh token into the variables.',
    '# 3. Me, Sessions, Refresh and SignOut then run as the signed-in user.',
    '# 4. SessionEvents runs over WebSocket (graphql-transport-ws, headers in connection_init)',
    '#    and shows each session of the user created or revoked, live: sign in somewhere else',
    '#    (or run SignIn in another tab) and watch. Press ■ to stop it.',
    '# The tenant is the X-Tenant header (Headers pane below); without it: "default".',
    '',
    'mutation SignUp {',
    '  signUp(input: {email: "ada@example.com", password: "correct horse battery staple", name: "Ada"}) {',
    '    accessToken',
    '    refreshToken',
    '    expiresIn',
    '    user { id emails { primary } }',
    '    session { id }',
    '  }',
    '}',
    '',
    'mutation SignIn {',
    '  signIn(input: {email: "ada@example.com", password: "correct horse battery staple"}) {',
    '    accessToken',
    '    refreshToken',
    '  }',
    '}',
    '',
    'query Me {',
    '  me { id name { display } emails { primary active } roles createdAt }',
    '}',
    '',
    'subscription SessionEvents {',
    '  sessionEvents { kind sessionId at }',
    '}',
    '',
    'query Sessions {',
    '  sessions { id current method device { os browser ip } createdAt lastSeenAt expiresAt }',
    '}',
    '',
    'mutation Refresh($refreshToken: String!) {',
    '  refreshSession(refreshToken: $refreshToken) {',
    '    accessToken',
    '    refreshToken',
    '  }',
    '}',
    '',
    'mutation SignOut {',
    '  signOut',
    '}',
    ''
  ].join('\n');

  var DEFAULT_HEADERS = '{\n  "X-Tenant": "default"\n}';

  // ---- tokens seen in results -------------------------------------------------------

  var lastTokens = null; // {accessToken, refreshToken, field}
  var listeners = [];

  function noteTokens(result) {
    var data = result && result.data;
    if (!data || typeof data !== 'object') return;
    Object.keys(data).forEach(function (field) {
      var value = data[field];
      if (value && typeof value === 'object' && typeof value.accessToken === 'string') {
        lastTokens = {
          accessToken: value.accessToken,
          refreshToken: typeof value.refreshToken === 'string' ? value.refreshToken : null,
          field: field
        };
        listeners.forEach(function (fn) { fn(lastTokens); });
      }
    });
  }

  // ---- fetcher ----------------------------------------------------------------------

  function cleanHeaders(headers) {
    var out = {};
    if (headers && typeof headers === 'object') {
      Object.keys(headers).forEach(function (name) {
        var value = headers[name];
        if (value !== undefined && value !== null && value !== '') out[name] = String(value);
      });
    }
    return out;
  }

  function isSubscription(params) {
    try {
      var doc = GraphQL.parse(params.query);
      var ops = doc.definitions.filter(function (d) { return d.kind === 'OperationDefinition'; });
      var op = params.operationName
        ? ops.filter(function (d) { return d.name && d.name.value === params.operationName; })[0]
        : ops.length === 1 ? ops[0] : null;
      return !!op && op.operation === 'subscription';
    } catch (e) {
      return false; // let the server report the syntax error
    }
  }

  function httpFetch(params, headers) {
    var all = Object.assign(
      { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' },
      headers
    );
    return window
      .fetch(endpoint, {
        method: 'POST',
        headers: all,
        body: JSON.stringify(params),
        credentials: 'same-origin',
        referrerPolicy: 'no-referrer'
      })
      .then(function (res) {
        return res.text().then(function (text) {
          var body;
          try {
            body = JSON.parse(text);
          } catch (e) {
            throw new Error('HTTP ' + res.status + ' ' + res.statusText + ': ' + text.slice(0, 500));
          }
          noteTokens(body);
          return body;
        });
      });
  }

  // A minimal graphql-transport-ws client: one socket per subscription.
  // Returns an AsyncIterable that is its own iterator (GraphiQL calls return() to stop).
  function wsSubscribe(params, headers) {
    var queue = [];
    var waiting = null;
    var finished = false;
    var socket = new WebSocket(wsEndpoint, 'graphql-transport-ws');

    function push(item) {
      if (finished) return;
      if (item.done) finished = true;
      if (waiting) {
        var resolve = waiting;
        waiting = null;
        resolve(item);
      } else {
        queue.push(item);
      }
    }
    function fail(message) {
      push({ done: false, value: { errors: [{ message: message }] } });
      push({ done: true, value: undefined });
    }

    socket.onopen = function () {
      socket.send(JSON.stringify({ type: 'connection_init', payload: headers }));
    };
    socket.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return fail('bad message from server'); }
      switch (msg.type) {
        case 'connection_ack':
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: params }));
          break;
        case 'ping':
          socket.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'next':
          push({ done: false, value: msg.payload });
          break;
        case 'error':
          push({ done: false, value: { errors: msg.payload } });
          push({ done: true, value: undefined });
          socket.close(1000);
          break;
        case 'complete':
          push({ done: true, value: undefined });
          socket.close(1000);
          break;
      }
    };
    socket.onerror = function () {
      fail('WebSocket error (' + wsEndpoint + ')');
    };
    socket.onclose = function (event) {
      if (event.code === 1000) push({ done: true, value: undefined });
      else fail('WebSocket closed: ' + event.code + (event.reason ? ' ' + event.reason : ''));
    };

    var iterator = {
      next: function () {
        if (queue.length) return Promise.resolve(queue.shift());
        if (finished) return Promise.resolve({ done: true, value: undefined });
        return new Promise(function (resolve) { waiting = resolve; });
      },
      return: function () {
        if (!finished) {
          try {
            if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ id: '1', type: 'complete' }));
            socket.close(1000);
          } catch (e) { /* already closed */ }
        }
        push({ done: true, value: undefined });
        queue = [];
        return Promise.resolve({ done: true, value: undefined });
      }
    };
    iterator[Symbol.asyncIterator] = function () { return iterator; };
    return iterator;
  }

  function fetcher(params, opts) {
    var headers = cleanHeaders(opts && opts.headers);
    if (isSubscription(params)) return wsSubscribe(params, headers);
    return httpFetch(params, headers);
  }

  // ---- the "use tokens" toolbar button ----------------------------------------------

  function parseJsonObject(text) {
    if (!text || !text.trim()) return {};
    var value = JSON.parse(text); // throws on invalid JSON: the caller reports it
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value;
  }

  function KeyIcon() {
    return h(
      'svg',
      { className: 'graphiql-toolbar-icon', viewBox: '0 0 24 24', fill: 'none', stroke: 'currentColor', strokeWidth: 1.5, 'aria-hidden': 'true' },
      h('circle', { cx: 8, cy: 15, r: 4 }),
      h('path', { d: 'M11 12l9-9M16 7l3 3M14 9l2 2' })
    );
  }

  function UseTokensButton() {
    var editors = UI.useEditorContext({ nonNull: true });
    var state = React.useState(lastTokens);
    var tokens = state[0];
    var setTokens = state[1];
    var applied = React.useState(null);
    React.useEffect(function () {
      listeners.push(setTokens);
      return function () { listeners = listeners.filter(function (fn) { return fn !== setTokens; }); };
    }, []);

    var ready = !!tokens && applied[0] !== tokens.accessToken;
    var label = tokens
      ? 'Use the tokens of the last ' + tokens.field + ' result: Authorization header and $refreshToken variable'
      : 'Use tokens (run SignUp or SignIn first)';

    function apply() {
      if (!tokens) return;
      var headerEditor = editors.headerEditor;
      var variableEditor = editors.variableEditor;
      try {
        var headers = parseJsonObject(headerEditor && headerEditor.getValue());
        headers.Authorization = 'Bearer ' + tokens.accessToken;
        if (headerEditor) headerEditor.setValue(JSON.stringify(headers, null, 2));
        if (tokens.refreshToken && variableEditor) {
          var variables = parseJsonObject(variableEditor.getValue());
          variables.refreshToken = tokens.refreshToken;
          variableEditor.setValue(JSON.stringify(variables, null, 2));
        }
        applied[1](tokens.accessToken);
      } catch (e) {
        window.alert('The headers or variables pane does not hold a JSON object: ' + e.message);
      }
    }

    return h(
      UI.ToolbarButton,
      {
        label: label,
        onClick: apply,
        disabled: !tokens,
        className: 'auth-use-tokens' + (ready ? ' auth-use-tokens-ready' : ''),
        'data-testid': 'use-tokens'
      },
      h(KeyIcon)
    );
  }

  window.ReactDOM.createRoot(root).render(
    h(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: EXAMPLE,
      defaultHeaders: DEFAULT_HEADERS,
      shouldPersistHeaders: false,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers',
      // Rendered after GraphiQL's own buttons (prettify, merge, copy).
      toolbar: { additionalComponent: UseTokensButton }
    })
  );
})();
