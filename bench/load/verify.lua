-- The verifier's GET /verify (forward auth) with the run's access tokens in turn.
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local tokens, n
function init(args) tokens = read_lines(os.getenv("LOAD_WORK") .. "/access.txt"); n = id end
function request()
  n = n + 1
  return wrk.format("GET", "/verify", { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] })
end
function response(status, headers, body) if status ~= 200 then errors = errors + 1 end end
