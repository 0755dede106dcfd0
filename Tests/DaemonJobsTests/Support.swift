import Foundation
import LookaheadProtocol
import Testing
import TestSupport

func unixNow() -> Double { Date().timeIntervalSince1970 }

/// Small models and short answers keep each line to a second or two on 2 cores; the exact
/// verifier spares loading the embedding model.
let jobsConfig = "threads = 2\ncontext_length = 2048\nmax_prompt_tokens = 1024\nverifier = exact\n"

/// The batch-job calls these tests make, on a running daemon.
extension DaemonProcess {
    /// The error a call is answered with.
    func failure(_ method: String, _ params: Params = [:]) throws -> ProtocolError {
        do {
            let result = try call(method, params)
            throw TestFailure("\(method) succeeded: \(result)")
        } catch ClientError.rejected(let error) {
            return error
        }
    }

    func submit(_ content: String, now: Bool = true) throws -> String {
        let job = try call("jobs.submit", ["content": .string(content), "now": .bool(now)])
        return try #require(job["id"]?.stringValue)
    }

    func job(_ id: String) throws -> JSONObject {
        try #require(try call("jobs.get", ["id": .string(id)]).objectValue)
    }

    /// Polls `jobs.get` until `done` says so.
    @discardableResult
    func wait(for id: String, timeout: Double = 180, until done: (JSONObject) -> Bool) throws -> JSONObject {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let job = try job(id)
            if done(job) { return job }
            guard Date() < deadline else { throw TestFailure("job \(id) still \(job) after \(timeout) s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Polls `status` until `condition` holds; the time it first did (client's clock), nil on timeout.
    func poll(timeout: Double, every interval: Double = 0.05, until condition: (JSONObject) -> Bool) throws -> Double? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let status = try call("status").objectValue, condition(status) { return unixNow() }
            Thread.sleep(forTimeInterval: interval)
        }
        return nil
    }

    func waitUntilFinished(_ id: String) throws -> JSONObject {
        try wait(for: id) { ["completed", "failed", "cancelled", "expired"].contains($0["state"]?.stringValue ?? "") }
    }

    /// Every line of the job, through all pages.
    func results(_ id: String) throws -> [JSONObject] {
        var lines: [JSONObject] = []
        var after: JSONValue = 0
        while true {
            let page = try call("jobs.results", ["id": .string(id), "after": after])
            lines += (page["lines"]?.arrayValue ?? []).compactMap(\.objectValue)
            guard let next = page["next_after"], !next.isNull else { return lines }
            after = next
        }
    }
}


extension JSONObject {
    func count(_ state: String) -> Int { Int(self["counts"]?["\(state)"]?.intValue ?? -1) }
    var state: String { self["state"]?.stringValue ?? "?" }
}

/// JSONL of `count` short arithmetic questions, custom ids q1…: `ar`, greedy, `maxTokens` each.
func questions(_ count: Int, maxTokens: Int, first: Int = 1) -> String {
    (first..<first + count).map { i in
        let line: JSONValue = ["custom_id": .string("q\(i)"), "prompt": .string("What is \(i) plus \(i * 7)? Explain briefly."),
                               "mode": "ar", "max_tokens": JSONValue(maxTokens)]
        return "\(line)\n"
    }.joined()
}
