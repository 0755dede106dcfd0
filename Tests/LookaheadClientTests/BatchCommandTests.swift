import Foundation
import LookaheadProtocol
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `lookaheadctl batch …` against a fake daemon: pages followed, keys sent, results files written
/// whole and privately.
@Suite struct BatchCommandTests {
    static func job(_ id: String, state: String = "queued") -> JSONValue {
        ["id": .string(id), "state": .string(state), "owner_uid": 1000, "now": true, "created_at": 1_700_000_000,
         "counts": ["total": 2, "queued": 2, "in_progress": 0, "done": 0, "failed": 0, "cancelled": 0, "expired": 0]]
    }

    static func line(_ n: Int) -> JSONValue {
        ["custom_id": .string("q\(n)"), "line": JSONValue(n), "state": "done", "attempts": 1, "result": ["answer": .string("\(n)")]]
    }

    /// `jobs.results` in two pages of lines 1–2 and 3; `failSecondPage` answers the second with an error.
    static func resultsDaemon(failSecondPage: Bool = false) throws -> FakeDaemon {
        try FakeDaemon { request in
            let after = request.params["after"]?.intValue ?? 0
            if after == 0 {
                return [.result(request, ["id": "job_1", "state": "completed", "lines": [Self.line(1), Self.line(2)], "next_after": 2])]
            }
            if failSecondPage { return [.error(request, .internal, "job store: disk full")] }
            return [.result(request, ["id": "job_1", "state": "completed", "lines": [Self.line(3)], "next_after": .null])]
        }
    }

    static func entries(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    @Test func listFollowsEveryPage() throws {
        let daemon = try FakeDaemon { request in
            switch request.params["after"]?.stringValue {
            case nil: return [.result(request, ["jobs": [Self.job("job_a"), Self.job("job_b")], "next_after": "1700000000.0/job_b"])]
            default: return [.result(request, ["jobs": [Self.job("job_c", state: "completed")], "next_after": .null])]
            }
        }
        defer { daemon.stop() }
        let json = try lookaheadctl(["batch", "list", "--json", "--socket", daemon.path])
        #expect(json.exitCode == 0, "\(json)")
        #expect(try JSONCodec.decode(Array(json.stdout.utf8)) == ["jobs": [Self.job("job_a"), Self.job("job_b"), Self.job("job_c", state: "completed")]])
        let table = try lookaheadctl(["batch", "list", "--socket", daemon.path])
        #expect(table.stdout.contains("job_a") && table.stdout.contains("job_b") && table.stdout.contains("job_c"), "\(table)")
        #expect(daemon.requests.map(\.method) == Array(repeating: "jobs.list", count: 4))
        #expect(daemon.requests.map { $0.params["after"]?.stringValue } == [nil, "1700000000.0/job_b", nil, "1700000000.0/job_b"])
    }

    @Test func submitSendsTheIdempotencyKeyAndSaysWhenTheJobWasThere() throws {
        let daemon = try FakeDaemon { request in
            guard var object = Self.job("job_3f9c2a71d04be815", state: "in_progress").objectValue else { return [] }
            object["duplicate"] = true
            return [.result(request, .object(object))]
        }
        defer { daemon.stop() }
        let dir = try TempDir("lookaheadctl-test")
        defer { dir.remove() }
        let input = try dir.write("in.jsonl", #"{"custom_id":"a","prompt":"hi"}"# + "\n")
        let run = try lookaheadctl(["batch", "submit", "--idempotency-key", "nightly-2025-06-02", input, "--socket", daemon.path])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout == "job_3f9c2a71d04be815 was already submitted with this key; it is in_progress\n")
        #expect(daemon.requests.first?.params["idempotency_key"] == "nightly-2025-06-02")
    }

    @Test func resultsFileIsReplacedWholeAndPrivate() throws {
        let daemon = try Self.resultsDaemon()
        defer { daemon.stop() }
        let dir = try TempDir("lookaheadctl-test")
        defer { dir.remove() }
        let out = try dir.write("answers.jsonl", "old\n")
        chmod(out, 0o644)
        let run = try lookaheadctl(["batch", "results", "job_1", "-o", out, "--socket", daemon.path])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stderr == "3 lines written to \(out)\n")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == [Self.line(1), Self.line(2), Self.line(3)].map { "\($0)\n" }.joined())
        var info = stat()
        #expect(stat(out, &info) == 0 && info.st_mode & 0o7777 == 0o600)
        #expect(try Self.entries(dir.path) == ["answers.jsonl"], "no temporary file left behind")
    }

    @Test func aFailedFetchLeavesTheOldFileAlone() throws {
        let daemon = try Self.resultsDaemon(failSecondPage: true)
        defer { daemon.stop() }
        let dir = try TempDir("lookaheadctl-test")
        defer { dir.remove() }
        let out = try dir.write("answers.jsonl", "old\n")
        let run = try lookaheadctl(["batch", "results", "job_1", "-o", out, "--socket", daemon.path])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stderr.contains("disk full"))
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "old\n")
        #expect(try Self.entries(dir.path) == ["answers.jsonl"], "no temporary file left behind")
    }

    /// Run as root in a shared directory, following a link there would write wherever its owner chose.
    @Test func aSymbolicLinkAtTheTargetIsRefused() throws {
        let daemon = try Self.resultsDaemon()
        defer { daemon.stop() }
        let dir = try TempDir("lookaheadctl-test")
        defer { dir.remove() }
        let victim = try dir.write("victim", "precious\n")
        let link = dir.sub("answers.jsonl")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
        let run = try lookaheadctl(["batch", "results", "job_1", "-o", link, "--socket", daemon.path])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stderr.contains("\(link) is a symbolic link"), "\(run.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == victim)
        #expect(try Self.entries(dir.path) == ["answers.jsonl", "victim"])
        #expect(daemon.requests.isEmpty, "refused before fetching anything")
    }
}
