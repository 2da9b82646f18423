-- RFC 7662 POST /introspect (the API's or the verifier's) with the run's access tokens in
-- turn, authenticated by the run's machine token (scope verify).
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local tokens, n
local machine = os.getenv("LOAD_MACHINE_TOKEN")
function init(args) tokens = read_lines(os.getenv("LOAD_WORK") .. "/access.txt"); n = id end
function request()
  n = n + 1
  return wrk.format("POST", "/introspect", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. machine,
  }, "token=" .. tokens[(n % #tokens) + 1])
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"active":true', 1, true) then errors = errors + 1 end
end
