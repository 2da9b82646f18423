-- signIn by password, the users of the run's user list in turn.
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local users, n
function init(args) users = read_lines(os.getenv("LOAD_WORK") .. "/emails.txt"); n = id end
function request()
  n = n + 1
  local email = users[(n % #users) + 1]
  return graphql('{"query":"mutation($e: String!) { signIn(input: {email: $e, password: \\"correct horse battery staple\\"}) { accessToken } }","variables":{"e":"' .. email .. '"}}')
end
function response(status, headers, body) count_errors(status, body) end
