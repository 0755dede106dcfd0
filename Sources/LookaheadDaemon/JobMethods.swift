import LookaheadProtocol

/// The `jobs.*` methods of docs/protocol.md: parameters are checked here, on the event loop, and
/// the work is handed to the `JobRunner`, which replies from its own queue.
enum JobMethods {
    static func call(
        _ method: String, _ p: Params, peer: UInt32?, runner: JobRunner, reply: @escaping JobRunner.Reply
    ) throws(ProtocolError) {
        guard let peer else {
            throw ProtocolError(.forbidden, "the peer's uid could not be read from the socket (SO_PEERCRED), and jobs belong to uids")
        }
        switch method {
        case "jobs.submit":
            try p.rejectUnknown(allowed: ["content", "path", "now", "deadline"])
            let source: JobSource
            let content = try p.optionalString("content"), path = try p.optionalString("path")
            switch (content, path) {
            case (let content?, nil): source = .content(content)
            case (nil, let path?): source = .path(path)
            case (nil, nil): throw ProtocolError(.invalidParams, "content (the JSONL) or path (a file to read) is required", field: "content")
            case (_?, _?): throw ProtocolError(.invalidParams, "give content or path, not both", field: "path")
            }
            let deadline = try p.optionalDouble("deadline")
            if let deadline, !deadline.isFinite {
                throw ProtocolError(.invalidParams, "deadline must be unix seconds", field: "deadline")
            }
            runner.submit(owner: peer, source: source, runNow: try p.optionalBool("now") ?? false, deadline: deadline, reply: reply)
        case "jobs.list":
            try p.rejectUnknown(allowed: [])
            runner.list(requester: peer, reply: reply)
        case "jobs.get":
            try p.rejectUnknown(allowed: ["id"])
            runner.get(id: try p.string("id"), requester: peer, reply: reply)
        case "jobs.results":
            try p.rejectUnknown(allowed: ["id", "after", "limit"])
            let after = try p.optionalInt("after") ?? 0
            guard after >= 0 else { throw ProtocolError(.invalidParams, "after must be a line number ≥ 0, got \(after)", field: "after") }
            let limit = try p.optionalInt("limit") ?? 1000
            guard (1...1000).contains(limit) else {
                throw ProtocolError(.invalidParams, "limit must be in 1...1000, got \(limit)", field: "limit")
            }
            runner.results(id: try p.string("id"), requester: peer, after: after, limit: limit, reply: reply)
        case "jobs.cancel":
            try p.rejectUnknown(allowed: ["id"])
            runner.cancel(id: try p.string("id"), requester: peer, reply: reply)
        default:
            throw ProtocolError(.unknownMethod, "unknown method '\(method)'", field: "method")
        }
    }
}
