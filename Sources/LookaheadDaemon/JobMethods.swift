import JobStore
import LookaheadProtocol

/// The `jobs.*` methods of docs/protocol.md: parameters are checked here, on the event loop, and
/// the work is handed to the `JobRunner`, which replies from its own queue.
enum JobMethods {
    static func call(
        _ method: Method, _ p: Params, peer: UInt32?, runner: JobRunner, reply: @escaping JobRunner.Reply
    ) throws(ProtocolError) {
        guard let peer else {
            throw ProtocolError(.forbidden, "the peer's uid could not be read from the socket (SO_PEERCRED), and jobs belong to uids")
        }
        switch method {
        case .jobsSubmit:
            try p.rejectUnknown(allowed: ["content", "path", "now", "deadline", "idempotency_key"])
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
            let key = try p.optionalString("idempotency_key")
            if let key, !(1...256).contains(key.utf8.count) {
                throw ProtocolError(.invalidParams, "idempotency_key must be 1 to 256 bytes of UTF-8, got \(key.utf8.count)",
                                    field: "idempotency_key")
            }
            runner.submit(owner: peer, source: source, runNow: try p.optionalBool("now") ?? false, deadline: deadline,
                          idempotencyKey: key, reply: reply)
        case .jobsList:
            try p.rejectUnknown(allowed: ["after", "limit"])
            let cursor = try p.optionalString("after").map { (text) throws(ProtocolError) -> JobCursor in
                guard let cursor = JobCursor(text) else {
                    throw ProtocolError(.invalidParams, "after must be the next_after of a previous page, got '\(text)'", field: "after")
                }
                return cursor
            }
            runner.list(requester: peer, after: cursor, limit: try limit(p, default: 100), reply: reply)
        case .jobsGet:
            try p.rejectUnknown(allowed: ["id"])
            runner.get(id: try p.string("id"), requester: peer, reply: reply)
        case .jobsResults:
            try p.rejectUnknown(allowed: ["id", "after", "limit"])
            let after = try p.optionalInt("after") ?? 0
            guard after >= 0 else { throw ProtocolError(.invalidParams, "after must be a line number ≥ 0, got \(after)", field: "after") }
            runner.results(id: try p.string("id"), requester: peer, after: after, limit: try limit(p, default: 1000), reply: reply)
        case .jobsCancel:
            try p.rejectUnknown(allowed: ["id"])
            runner.cancel(id: try p.string("id"), requester: peer, reply: reply)
        case .ask, .cancel, .status, .models, .metrics, .version:
            preconditionFailure("\(method.rawValue) is not a jobs.* method; the connection dispatches it")
        }
    }

    /// A page size: the bound keeps one page's read, and its reply, small.
    private static func limit(_ p: Params, default value: Int) throws(ProtocolError) -> Int {
        let limit = try p.optionalInt("limit") ?? value
        guard (1...1000).contains(limit) else {
            throw ProtocolError(.invalidParams, "limit must be in 1...1000, got \(limit)", field: "limit")
        }
        return limit
    }
}
