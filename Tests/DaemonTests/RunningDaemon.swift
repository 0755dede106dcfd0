import Foundation
import LookaheadProtocol
import Testing

/// A real `lookaheadd` (the binary built beside this test bundle) on a socket in a temp directory,
/// loading the cached default models. Stopped with SIGTERM when the test is done with it.
final class RunningDaemon {
    let directory: URL
    let socket: String
    let process = Process()
    let log: URL
    private let exited = DispatchSemaphore(value: 0)

    /// Small enough for several daemons side by side on a 24 GiB, 2-core machine.
    static let baseConfig = "threads = 2\ncontext_length = 4096\nmax_prompt_tokens = 2048\n"

    /// The base settings with `overrides` (whole `key = value` lines) replacing keys they name.
    static func merged(_ overrides: String) -> String {
        func key(_ line: Substring) -> String { String(line.split(separator: "=").first ?? "").trimmingCharacters(in: .whitespaces) }
        let replaced = Set(overrides.split(separator: "\n").map(key))
        return baseConfig.split(separator: "\n").filter { !replaced.contains(key($0)) }.map { $0 + "\n" }.joined() + overrides
    }

    static var binaries: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// `config`: lines of a lookaheadd.conf for this run; `arguments` replace the usual flags when given.
    init(config: String = "", arguments: [String]? = nil, environment: [String: String] = [:],
         launcher: [String] = [], waitForSocket: Bool = true) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lookaheadd-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        socket = directory.appendingPathComponent("l.sock").path
        log = directory.appendingPathComponent("daemon.log")
        let conf = directory.appendingPathComponent("lookaheadd.conf")
        try RunningDaemon.merged(config).write(to: conf, atomically: true, encoding: .utf8)
        let daemon = RunningDaemon.binaries.appendingPathComponent("lookaheadd").path
        let flags = arguments ?? ["--config", conf.path, "--socket", socket,
                                  "--state-dir", directory.appendingPathComponent("state").path]
        if launcher.isEmpty {
            process.executableURL = URL(fileURLWithPath: daemon)
            process.arguments = flags
        } else {
            process.executableURL = URL(fileURLWithPath: launcher[0])
            process.arguments = Array(launcher.dropFirst()) + [daemon] + flags
        }
        var env = ProcessInfo.processInfo.environment
        env["OMP_WAIT_POLICY"] = "passive"
        process.environment = env.merging(environment) { $1 }
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        if waitForSocket { try waitUntilServing() }
    }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Polls until a `status` call answers (models loaded, socket bound).
    func waitUntilServing(timeout: Double = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { throw DaemonTestError("lookaheadd exited early:\n\(output)") }
            if let client = try? Client(path: socket), (try? client.call(method: "status")) != nil { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw DaemonTestError("lookaheadd did not serve \(socket) within \(timeout) s:\n\(output)")
    }

    func client() throws -> Client { try Client(path: socket) }

    func status() throws -> JSONObject { try #require(try client().call(method: "status").objectValue) }

    /// SIGTERM (or `signal`), then the exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Double = 60) -> Int32? {
        if process.isRunning { kill(process.processIdentifier, signal) }
        guard let status = waitForExit(timeout: timeout) else {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(timeout: 30)
            return nil
        }
        return status
    }

    private var exitStatus: Int32?

    /// Waits for the exit (once; later calls return the same status). Nil on timeout.
    func waitForExit(timeout: Double = 60) -> Int32? {
        if let exitStatus { return exitStatus }
        guard exited.wait(timeout: .now() + timeout) == .success else { return nil }
        exitStatus = process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
        return exitStatus
    }

    deinit {
        stop(signal: SIGKILL, timeout: 10)
        try? FileManager.default.removeItem(at: directory)
    }
}

struct DaemonTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension JSONValue {
    subscript(_ key: String) -> JSONValue? { objectValue?[key] }
}

/// The GSM8K test set's first problems, with the reference prompt suffix.
enum GSM8K {
    static let questions: [String] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = root.deletingLastPathComponent().appendingPathComponent("shared/data/gsm8k/test.jsonl")
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").prefix(8).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])?["question"]
        }.map { $0 + "\nPlease reason step by step, and put your final answer within \\boxed{}." }
    }()

    static func require(_ count: Int) throws {
        try #require(questions.count >= count, "GSM8K data missing: ../shared/data/gsm8k/test.jsonl beside the checkout")
    }
}
