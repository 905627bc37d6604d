-- One 100-byte unary echo, the same bytes for OmniRelay's YARPC-HTTP inbound and for axum:
-- the YARPC headers OmniRelay requires are sent to axum too, which ignores them.
wrk.method = "POST"
wrk.body = string.rep("x", 100)
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Rpc-Caller"] = "wrk"
wrk.headers["Rpc-Service"] = "bench"
wrk.headers["Rpc-Procedure"] = "echo"
wrk.headers["Rpc-Encoding"] = "raw"
wrk.headers["Context-TTL-MS"] = "5000"
