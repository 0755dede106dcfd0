import DaemonConfig
import Lookahead
import LookaheadProtocol
import OpenAIProtocol
import Testing
import TestSupport
@testable import LookaheadDaemon
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP answer as a client reads it: status, headers (names lowercased) and the body, chunked
/// transfer decoded.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var json: JSONObject { get throws { try JSONCodec.decodeObject(body) } }
    var openAIError: JSONObject? {
        guard let object = try? JSONCodec.decodeObject(body) else { return nil }
        return object["error"]?.objectValue
    }

    /// Server-sent events: the JSON of every `data:` line, and whether `[DONE]` ended them.
    var events: (chunks: [JSONObject], done: Bool) {
        var chunks: [JSONObject] = [], done = false
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") where line.hasPrefix("data: ") {
            let data = line.dropFirst(6)
            if data == "[DONE]" { done = true } else if let o = try? JSONCodec.decodeObject(Array(data.utf8)) { chunks.append(o) }
        }
        return (chunks, done)
    }
}

/// One request on a new connection (`Connection: close`), read to the end.
func http(_ socket: String, _ method: String, _ target: String, body: String? = nil, headers: [String: String] = [:]) throws -> HTTPReply {
    let fd = try connectUnixSocket(socket, receiveTimeout: 30)
    defer { close(fd) }
    var request = "\(method) \(target) HTTP/1.1\r\nhost: test\r\nconnection: close\r\n"
    for (k, v) in headers { request += "\(k): \(v)\r\n" }
    if let body { request += "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n" }
    request += "\r\n" + (body ?? "")
    try sendAll(fd, Array(request.utf8))
    return try parseHTTP(readToEnd(fd))
}

func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw TestFailure("write: errno \(errno)") }
        sent += n
    }
}

func readToEnd(_ fd: Int32) throws -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 { return out }
        if n < 0 { throw TestFailure("read: errno \(errno)") }
        out += buffer[..<n]
    }
}

func parseHTTP(_ raw: [UInt8]) throws -> HTTPReply {
    let separator = Array("\r\n\r\n".utf8)
    guard let end = (0..<max(0, raw.count - 3)).first(where: { raw[$0..<$0 + 4].elementsEqual(separator) }) else {
        throw TestFailure("no HTTP head in \(raw.count) bytes: \(String(decoding: raw.prefix(200), as: UTF8.self))")
    }
    let lines = String(decoding: raw[..<end], as: UTF8.self).components("\r\n")
    let statusParts = lines[0].split(separator: " ")
    guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestFailure("bad status line \(lines[0])") }
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingWhitespace
    }
    var body = Array(raw[(end + 4)...])
    if headers["transfer-encoding"] == "chunked" {
        var decoded: [UInt8] = [], i = 0
        while i < body.count {
            guard let lineEnd = (i..<body.count - 1).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
                  let size = Int(String(decoding: body[i..<lineEnd], as: UTF8.self), radix: 16) else { break }
            if size == 0 { break }
            decoded += body[(lineEnd + 2)..<(lineEnd + 2 + size)]
            i = lineEnd + 2 + size + 2
        }
        body = decoded
    }
    return HTTPReply(status: status, headers: headers, body: body)
}

extension String {
    func components(_ separator: String) -> [String] {
        var parts: [String] = [], rest = Substring(self)
        while let r = rest.firstRange(of: separator) {
            parts.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        return parts + [String(rest)]
    }
}

/// The HTTP surface on a real Unix socket over scripted engines.
struct ServedHTTP {
    let daemon: ScriptedDaemon
    let network = Network()
    let server: HTTPServer
    let socket: String

    init(_ config: DaemonConfiguration = DaemonConfiguration(), apiKey: String? = nil, script: [String]? = nil,
         steps: Int = 4, contextLength: Int = 4096, ready: Bool = true) throws {
        daemon = try ScriptedDaemon(config, steps: steps, contextLength: contextLength, script: script)
        socket = daemon.state.sub("http.sock")
        server = try HTTPServer(endpoints: [.unix(path: socket)], socketMode: 0o600, apiKey: apiKey,
                                limits: config.connectionLimits, gate: daemon.methods.connections, network: network)
        daemon.batcher.start()
        if ready { server.serve(daemon.methods) }
    }

    func stop() {
        server.stopAccepting()
        network.shutdown()
    }

    func chat(_ extra: String = "", stream: Bool = false) throws -> HTTPReply {
        try http(socket, "POST", "/v1/chat/completions",
                 body: #"{"messages": [{"role": "user", "content": "\#(ScriptedDaemon.prompt)"}], "stream": \#(stream)\#(extra)}"#)
    }
}

/// A reasoning model's script: thinking, `</think>`, the answer.
let thinkingScript = ["<think> first |", "second </think>", "The answer is 7 . STOP after <eos>"]

@Suite("OpenAI-compatible HTTP, on a real socket", .serialized)
struct HTTPTests {
    @Test func healthSaysLoadingUntilTheModelsAreThereAndEverythingElseWaits() throws {
        let served = try ServedHTTP(ready: false)
        defer { served.stop() }
        var health = try http(served.socket, "GET", "/health")
        #expect(health.status == 503)
        #expect(try health.json["status"] == "loading")
        let early = try http(served.socket, "GET", "/v1/models")
        #expect(early.status == 503 && early.openAIError?["code"] == "loading")
        served.server.serve(served.daemon.methods)
        health = try http(served.socket, "GET", "/health")
        #expect(health.status == 200)
        #expect(try health.json["status"] == "ok")
        let models = try http(served.socket, "GET", "/v1/models")
        #expect(models.status == 200)
        #expect((try models.json)["data"]?.arrayValue?.first?.objectValue?["id"] == .string(served.daemon.methods.modelID))
    }

    @Test func aChatCompletionSplitsReasoningFromContentAndCountsTokens() throws {
        let served = try ServedHTTP(script: thinkingScript)
        defer { served.stop() }
        let reply = try served.chat()
        #expect(reply.status == 200 && reply.headers["content-type"] == "application/json")
        let body = try reply.json
        let message = body["choices"]?.arrayValue?.first?.objectValue?["message"]?.objectValue
        #expect(message?["reasoning_content"] == "first\n\n second")
        #expect(message?["content"] == "The answer is 7 . STOP after")
        #expect(body["choices"]?.arrayValue?.first?.objectValue?["finish_reason"] == "stop")
        let usage = body["usage"]?.objectValue
        #expect(usage?["completion_tokens"]?.intValue ?? 0 > 0)
        #expect(usage?["prompt_tokens"] == JSONValue(ScriptedDaemon.prompt.split(separator: " ").count))   // a token a word
        #expect(body["lookahead"]?.objectValue?["mode"] == "ar")
    }

    @Test func aStreamSaysTheSameInChunksEndingWithDone() throws {
        let served = try ServedHTTP(script: thinkingScript)
        defer { served.stop() }
        let whole = try served.chat().json
        let reply = try served.chat(#", "stream_options": {"include_usage": true}"#, stream: true)
        #expect(reply.status == 200 && reply.headers["content-type"] == "text/event-stream")
        let (chunks, done) = reply.events
        #expect(done)
        let deltas = chunks.compactMap { $0["choices"]?.arrayValue?.first?.objectValue?["delta"]?.objectValue }
        #expect(deltas.first?["role"] == "assistant")
        let reasoning = deltas.compactMap { $0["reasoning_content"]?.stringValue }.joined()
        let content = deltas.compactMap { $0["content"]?.stringValue }.joined()
        let message = whole["choices"]?.arrayValue?.first?.objectValue?["message"]?.objectValue
        #expect(reasoning == message?["reasoning_content"]?.stringValue)
        #expect(content == message?["content"]?.stringValue)
        #expect(chunks.allSatisfy { $0["object"] == "chat.completion.chunk" })
        let last = try #require(chunks.last)
        #expect(last["choices"] == .array([]) && last["usage"] == whole["usage"])
        #expect(chunks.dropLast().last?["choices"]?.arrayValue?.first?.objectValue?["finish_reason"] == "stop")
    }

    @Test func aStopStringEndsTheContentBeforeIt() throws {
        let served = try ServedHTTP(script: thinkingScript)
        defer { served.stop() }
        let body = try served.chat(#", "stop": "STOP""#).json
        let choice = body["choices"]?.arrayValue?.first?.objectValue
        #expect(choice?["message"]?.objectValue?["content"] == "The answer is 7 .")
        #expect(choice?["finish_reason"] == "stop")
        let streamed = try served.chat(#", "stop": ["STOP"]"#, stream: true).events.chunks
        let content = streamed.compactMap { $0["choices"]?.arrayValue?.first?.objectValue?["delta"]?.objectValue?["content"]?.stringValue }
        #expect(content.joined() == "The answer is 7 .")
    }

    @Test func textCompletionsContinueThePromptAsItIs() throws {
        let served = try ServedHTTP()
        defer { served.stop() }
        let reply = try http(served.socket, "POST", "/v1/completions", body: #"{"prompt": "\#(ScriptedDaemon.prompt)", "max_tokens": 4}"#)
        let body = try reply.json
        #expect(reply.status == 200 && body["object"] == "text_completion")
        #expect(body["choices"]?.arrayValue?.first?.objectValue?["text"] == " s0\n\n s1\n\n")
        #expect(body["choices"]?.arrayValue?.first?.objectValue?["finish_reason"] == "length")
    }

    @Test func badRequestsGetOpenAIShapedErrorsAndTheServerCarriesOn() throws {
        var config = DaemonConfiguration()
        config.maxFrameBytes = 4096
        let served = try ServedHTTP(config)
        defer { served.stop() }
        let cases: [(String, String, String?, Int, String?)] = [
            ("POST", "/v1/chat/completions", "{not json", 400, nil),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": 3}]}"#, 400, "messages[0].content"),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}"#, 400, "temperature"),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "model": "gpt-4"}"#, 404, "model"),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "lookahead": {"gamma": 99}}"#, 400, "lookahead.gamma"),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}"#, 400, "max_completion_tokens"),
            ("POST", "/v1/chat/completions", "{\"messages\": \"" + String(repeating: "x", count: 5000) + "\"}", 413, nil),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "stop": ["ok", ""]}"#, 400, "stop[1]"),
            ("POST", "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "stop": 5}"#, 400, "stop"),
            ("POST", "/v1/completions", #"{"prompt": "x", "stream_options": {"include_usage": "yes"}, "stream": true}"#, 400, "stream_options.include_usage"),
            ("GET", "/v1/chat/completions", nil, 405, nil),
            ("GET", "/v2/nothing", nil, 404, nil),
        ]
        for (method, path, body, status, param) in cases {
            let reply = try http(served.socket, method, path, body: body)
            #expect(reply.status == status, "\(method) \(path) \(body?.prefix(60) ?? "")")
            let error = try #require(reply.openAIError, "no OpenAI error for \(method) \(path)")
            #expect(error["message"]?.stringValue?.isEmpty == false && error["type"]?.stringValue != nil)
            if let param { #expect(error["param"] == .string(param), "\(body ?? path)") }
        }
        #expect(try served.chat().status == 200)
    }

    @Test func aKeyIsRequiredWhenOneIsConfiguredButNotForHealth() throws {
        let served = try ServedHTTP(apiKey: "s3cret")
        defer { served.stop() }
        #expect(try http(served.socket, "GET", "/health").status == 200)
        for headers in [[:], ["authorization": "Bearer wrong!"], ["authorization": "s3cret"]] {
            let reply = try http(served.socket, "GET", "/v1/models", headers: headers)
            #expect(reply.status == 401 && reply.openAIError?["code"] == "invalid_api_key")
            #expect(reply.headers["www-authenticate"] == "Bearer")
        }
        #expect(try http(served.socket, "GET", "/v1/models", headers: ["authorization": "Bearer s3cret"]).status == 200)
        #expect(try http(served.socket, "GET", "/metrics", headers: ["authorization": "Bearer s3cret"]).status == 200)
    }

    @Test func aClientThatLeavesMidStreamCancelsItsSession() throws {
        var config = DaemonConfiguration()
        config.maxTokensLimit = 200_000
        let served = try ServedHTTP(config, steps: 50_000, contextLength: 200_000)
        defer { served.stop() }
        let fd = try connectUnixSocket(served.socket, receiveTimeout: 30)
        let body = #"{"messages": [{"role": "user", "content": "\#(ScriptedDaemon.prompt)"}], "stream": true}"#
        try sendAll(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
        // Read until the first step has come: the session is running.
        var received: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains(#""content":"s0"#) {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            try #require(n > 0, "the stream ended before its first step")
            received += buffer[..<n]
        }
        #expect(String(decoding: received, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        close(fd)
        let deadline = monotonicSeconds() + 20
        while monotonicSeconds() < deadline, served.daemon.batcher.status.totals.cancelled + served.daemon.batcher.status.totals.finished == 0 {
            usleep(10_000)
        }
        let status = served.daemon.batcher.status
        #expect(status.activeSessions == 0)
        #expect(status.totals.cancelled == 1 && status.totals.finished == 0)
    }

    @Test func metricsAreServedAsPrometheusText() throws {
        let served = try ServedHTTP()
        defer { served.stop() }
        _ = try served.chat()
        let reply = try http(served.socket, "GET", "/metrics")
        #expect(reply.status == 200 && reply.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = String(decoding: reply.body, as: UTF8.self)
        let samples = Dictionary(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line -> (String, Double)? in
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            return (String(line[..<space]), value)
        }, uniquingKeysWith: { a, _ in a })
        #expect(samples["lookaheadd_e2e_request_latency_seconds_count"] == 1)
        #expect(samples["lookaheadd_time_to_first_token_seconds_count"] == 1)
        #expect(samples["lookaheadd_generation_tokens_total"] ?? 0 > 0)
        #expect(samples["lookaheadd_prompt_tokens_total"] == Double(ScriptedDaemon.prompt.split(separator: " ").count))
        #expect(samples[#"lookaheadd_sessions_ended_total{outcome="finished"}"#] == 1)
        #expect(samples["lookaheadd_num_requests_running"] == 0)
        #expect(samples[#"lookaheadd_kv_cells{state="total"}"#] == 4096)
        #expect(samples[#"lookaheadd_requests_total{method="POST /v1/chat/completions",outcome="200"}"#] == 1)
    }
}

@Suite("HTTP connection limits, on a real socket", .serialized)
struct HTTPLimitTests {
    @Test func aRequestBegunAndNotFinishedTimesOutWith408() throws {
        var config = DaemonConfiguration()
        config.frameTimeoutSeconds = 0.3
        let served = try ServedHTTP(config)
        defer { served.stop() }
        let fd = try connectUnixSocket(served.socket, receiveTimeout: 10)
        defer { close(fd) }
        try sendAll(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{\"mess".utf8))
        let reply = try parseHTTP(readToEnd(fd))
        #expect(reply.status == 408 && reply.openAIError?["code"] == "timeout")
        #expect(try served.chat().status == 200)
    }

    /// A stream whose client never reads: the text waits merged (bounded by the answer), and once
    /// the replies have gone unread for `stalled_reader_seconds` the daemon drops the client,
    /// which cancels its session.
    @Test func aStreamThatIsNeverReadIsDroppedAndItsSessionCancelled() throws {
        var config = DaemonConfiguration()
        config.maxUnsentBytes = 4096
        config.stalledReaderSeconds = 0.5
        config.maxTokensLimit = 200_000
        let served = try ServedHTTP(config, steps: 50_000, contextLength: 200_000)
        defer { served.stop() }
        let fd = try connectUnixSocket(served.socket, receiveTimeout: 10)
        defer { close(fd) }
        let body = #"{"messages": [{"role": "user", "content": "\#(ScriptedDaemon.prompt)"}], "stream": true}"#
        try sendAll(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
        let start = monotonicSeconds()
        while served.daemon.batcher.status.totals.cancelled + served.daemon.batcher.status.totals.finished == 0, monotonicSeconds() - start < 30 {
            usleep(20_000)
        }
        let totals = served.daemon.batcher.status.totals
        #expect(totals.cancelled == 1 && totals.finished == 0, "the daemon kept streaming to a client that never reads")
        #expect(served.daemon.methods.connections.open == 0)
    }

    @Test func pastTheConnectionLimitAClientHears503() throws {
        var config = DaemonConfiguration()
        config.maxConnections = 1
        let served = try ServedHTTP(config)
        defer { served.stop() }
        let first = try connectUnixSocket(served.socket, receiveTimeout: 10)
        defer { close(first) }
        usleep(100_000)
        let reply = try http(served.socket, "GET", "/v1/models")
        #expect(reply.status == 503 && reply.openAIError?["code"] == "busy")
        #expect(reply.openAIError?["message"]?.stringValue?.contains("max_connections") == true)
    }
}
