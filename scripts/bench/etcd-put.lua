-- wrk script: etcd v3 JSON gateway puts, each to a new key (<KEY_PREFIX>-<n>), 64-byte value.
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
    return ((s:gsub(".", function(c)
        local r, b = "", c:byte()
        for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
        return r
    end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
        if #x < 6 then return "" end
        local c = 0
        for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
        return b64chars:sub(c + 1, c + 1)
    end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local counter = 0
local prefix = (os.getenv("KEY_PREFIX") or "bench") .. "-"
local value = b64(string.rep("v", 64))

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
    counter = counter + 1
    local body = '{"key":"' .. b64(prefix .. counter) .. '","value":"' .. value .. '"}'
    return wrk.format(nil, "/v3/kv/put", nil, body)
end
