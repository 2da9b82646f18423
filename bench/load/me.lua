-- me with an access token (the run's tokens in turn).
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local tokens, n
function init(args) tokens = read_lines(os.getenv("LOAD_WORK") .. "/access.txt"); n = id end
function request()
  n = n + 1
  return graphql('{"query":"{ me { id name { display } emails { primary } } }"}', tokens[(n % #tokens) + 1])
end
function response(status, headers, body) count_errors(status, body) end
