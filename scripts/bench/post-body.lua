-- wrk script: POST the JSON body in the file named by BODY_FILE with the bearer token in
-- GOSCHED_ADMIN_TOKEN (goscheduler creates, single or batch).
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GOSCHED_ADMIN_TOKEN")
