import Foundation
import LookaheadProtocol

/// A real `lookaheadd` — the binary built beside the running test bundle — as a subprocess with its
/// output in a log file; it dies with the test process (`launch`). Every end-to-end suite starts its
/// daemons through this one harness, usually by way of `Sandbox.start`.
public final class DaemonProcess {
    /// Where the built lookaheadd and lookaheadctl are: beside the test bundle.
    public static var binaries: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    public let socket: String
    public let logPath: String
    public let process = Process()
    private let exited = DispatchSemaphore(value: 0)
    private var exitStatus: Int32?
    /// Kept alive as long as the daemon (the sandbox whose directory it works in).
    private let owner: AnyObject?

    /// Starts `lookaheadd arguments…` (behind `launcher` when given), appending its output to `log`
    /// so a restart in the same directory keeps the earlier run's lines. With `waitForSocket`,
    /// returns once `status` answers on `socket`: the models are loaded and the socket is this run's.
    public init(arguments: [String], socket: String, log: String, environment: [String: String] = [:],
                launcher: [String] = [], waitForSocket: Bool = true, keepingAlive owner: AnyObject? = nil) throws {
        self.socket = socket
        logPath = log
        self.owner = owner
        let daemon = DaemonProcess.binaries.appendingPathComponent("lookaheadd").path
        try requireFile(daemon, "build it first (`make build`, or `swift build --build-tests`)")
        process.executableURL = URL(fileURLWithPath: launcher.first ?? daemon)
        process.arguments = launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [daemon] + arguments
        var env = ProcessInfo.processInfo.environment
        env["LOOKAHEAD_FAKE_TIME"] = nil
        process.environment = env.merging(environment) { $1 }
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.terminationHandler = { [exited] _ in exited.signal() }
        try launch(process)
        if waitForSocket { try waitUntilServing() }
    }

    deinit { kill9() }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    /// Polls until a `status` call answers (a killed run leaves its socket file behind, which
    /// refuses connections, so the file's existence proves nothing).
    public func waitUntilServing(timeout: Double = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { throw TestFailure("lookaheadd exited early:\n\(log)") }
            if (try? call("status")) != nil { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestFailure("lookaheadd did not serve \(socket) within \(timeout) s:\n\(log)")
    }

    public func client() throws -> Client { try Client(path: socket) }

    public func call(_ method: String, _ params: Params = [:]) throws -> JSONValue {
        try client().call(method: method, params: params)
    }

    /// A crash: no shutdown, no checkpoint.
    public func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 30)
    }

    /// SIGTERM (or `signal`), then the exit status; SIGKILL and nil when it does not exit in time.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Double = 60) -> Int32? {
        if process.isRunning { kill(process.processIdentifier, signal) }
        guard let status = waitForExit(timeout: timeout) else {
            kill9()
            return nil
        }
        return status
    }

    /// The exit status, 128 + N for a death by signal N (once; later calls return the same). Nil on timeout.
    public func waitForExit(timeout: Double = 60) -> Int32? {
        if let exitStatus { return exitStatus }
        guard exited.wait(timeout: .now() + timeout) == .success else { return nil }
        exitStatus = process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
        return exitStatus
    }
}

extension JSONValue {
    public subscript(_ key: String) -> JSONValue? { objectValue?[key] }
}
