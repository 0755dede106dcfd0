import DaemonHarness
import Foundation
import LookaheadProtocol
import Testing

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Where the built lookaheadd and lookaheadctl are: beside this test bundle.
let binaries = DaemonProcess.binaries

func unixNow() -> Double { Date().timeIntervalSince1970 }

/// A temporary directory for one test: socket, state directory, configs, inputs. Every daemon a
/// test starts in it uses the same state directory, so a restart finds the jobs of the run before.
final class Sandbox {
    let path: String
    var socket: String { path + "/lookaheadd.sock" }
    var state: String { path + "/state" }

    init() throws {
        var template = Array((FileManager.default.temporaryDirectory.path + "/lookaheadd-jobs-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: errno \(errno)") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// Small models and short answers keep each line to a second or two on 2 cores; the exact
    /// verifier spares loading the embedding model.
    func start(config: String = "", environment: [String: String] = [:], launcher: [String] = []) throws -> DaemonProcess {
        let file = try write("lookaheadd.conf", "threads = 2\ncontext_length = 2048\nmax_prompt_tokens = 1024\nverifier = exact\n" + config)
        return try DaemonProcess(arguments: ["--config", file, "--socket", socket, "--state-dir", state],
                                 socket: socket, log: path + "/daemon.log", environment: environment, launcher: launcher)
    }
}

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

struct Outcome {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The built lookaheadctl; as another uid (through setpriv) when `uid` is given, with `tools`
/// holding a copy of it and its libraries that such a user can read.
func lookaheadctl(_ arguments: [String], as uid: UInt32? = nil, tools: ClientTools? = nil) throws -> Outcome {
    let process = Process()
    var env = ProcessInfo.processInfo.environment
    env["LOOKAHEAD_SOCKET"] = nil
    let binary = tools?.binary ?? binaries.appendingPathComponent("lookaheadctl").path
    if let tools { env["LD_LIBRARY_PATH"] = tools.libraries }
    if let uid {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--", binary] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
    }
    process.environment = env
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read before waiting: a long results listing must not fill the pipe and stall the child.
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Outcome(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                   stderr: String(decoding: err, as: UTF8.self))
}

/// lookaheadctl and the llama.cpp libraries it links, copied where any user can read them: the
/// build cache may sit under a home directory others cannot enter.
struct ClientTools {
    let binary: String
    let libraries: String

    init(in sandbox: Sandbox) throws {
        let fm = FileManager.default
        let lib = sandbox.path + "/lib"
        try fm.createDirectory(atPath: lib, withIntermediateDirectories: true)
        let source = (ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
            .first { fm.fileExists(atPath: $0 + "/libllama.so.0") }
        let directory = try #require(source, "no libllama.so.0 on LD_LIBRARY_PATH")
        for name in try fm.contentsOfDirectory(atPath: directory)
        where name == "libllama.so.0" || (name.hasPrefix("libggml") && name.hasSuffix(".so.0")) {
            // Data(contentsOf:) follows the versioned symlinks to the files themselves.
            try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)).write(to: URL(fileURLWithPath: lib + "/" + name))
        }
        binary = sandbox.path + "/lookaheadctl"
        try fm.copyItem(atPath: binaries.appendingPathComponent("lookaheadctl").path, toPath: binary)
        libraries = lib
        for path in [sandbox.path, lib] { chmod(path, 0o755) }
        for name in try fm.contentsOfDirectory(atPath: lib) { chmod(lib + "/" + name, 0o644) }
        chmod(binary, 0o755)
    }
}
