-- updateProfile (name and metadata) with an access token.
dofile(os.getenv("LOAD_DIR") .. "/common.lua")
local tokens, n
function init(args) tokens = read_lines(os.getenv("LOAD_WORK") .. "/access.txt"); n = id end
function request()
  n = n + 1
  return graphql('{"query":"mutation($m: JSON) { updateProfile(input: {name: \\"Load ' .. n .. '\\", metadata: $m}) { id } }","variables":{"m":{"n":' .. n .. '}}}', tokens[(n % #tokens) + 1])
end
function response(status, headers, body) count_errors(status, body) end
