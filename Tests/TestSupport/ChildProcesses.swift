import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Every process a test starts (daemons, lookaheadctl runs, busy loops, scripts) dies with the test
// process, however that ends: a crash, a trap, SIGKILL from a CI timeout. Each child is started
// through util-linux's `setpriv --pdeathsig KILL -- …`, which sets PR_SET_PDEATHSIG in the child and
// then executes the real program (the setting survives exec). The kernel sends that signal when the
// *thread* that forked the child ends, not the process, and Swift's and Dispatch's worker threads
// come and go; so every child is forked from one thread that lives as long as the process
// (`Spawner`). `launch` returns once setpriv has executed the program, so the setting is in place
// before a test can go on and crash.

/// Starts `process` (configured as usual: executable, arguments, environment, standard streams,
/// termination handler) so that it is killed when this test process dies. `setprivOptions` are
/// further setpriv options, e.g. `--reuid=65534`, applied before the program runs.
public func launch(_ process: Process, setprivOptions: [String] = []) throws {
    guard FileManager.default.isExecutableFile(atPath: ChildProcesses.setpriv) else {
        throw TestFailure("\(ChildProcesses.setpriv) is missing (Debian: util-linux); test helpers need it to die with the test process")
    }
    guard let executable = process.executableURL?.path else { throw TestFailure("launch: no executable set") }
    process.executableURL = URL(fileURLWithPath: ChildProcesses.setpriv)
    process.arguments = ["--pdeathsig", "KILL"] + setprivOptions + ["--", executable] + (process.arguments ?? [])
    try Spawner.shared.run { try process.run() }
    ChildProcesses.waitForExec(process.processIdentifier)
}

public enum ChildProcesses {
    public static let setpriv = "/usr/bin/setpriv"

    /// Waits (up to 5 s) until `pid` no longer runs setpriv: it has executed its program, or ended.
    static func waitForExec(_ pid: pid_t) {
        let setprivPath = URL(fileURLWithPath: setpriv).resolvingSymlinksInPath().path
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
                  exe == setprivPath else { return }
            usleep(1000)
        }
    }

    /// Whether `pid` is gone: no such process, or a zombie (dead, not yet reaped by whoever adopted it).
    public static func isGone(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // pid (comm) state …: the state follows the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}

/// The one long-lived thread that forks every child (see above).
final class Spawner: @unchecked Sendable {
    static let shared = Spawner()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "TestSupport.Spawner"
        thread.start()
    }

    /// Runs `body` on the spawner thread and waits for it.
    func run(_ body: @escaping () throws -> Void) throws {
        final class Outcome: @unchecked Sendable { var error: (any Error)? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        condition.lock()
        jobs.append {
            do { try body() } catch { outcome.error = error }
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        if let error = outcome.error { throw error }
    }
}

/// How a finished command went.
public struct Outcome: Sendable, CustomStringConvertible {
    /// The exit status; nil when a signal ended the process (`signal` says which).
    public var exitCode: Int32?
    public var signal: Int32?
    public var stdout: String
    public var stderr: String

    public var description: String {
        "exit \(exitCode.map(String.init) ?? "by signal \(signal ?? 0)"); stdout: \(stdout); stderr: \(stderr)"
    }
}

/// Runs `executable arguments…` to the end (through `launch`), feeding it `stdin` and collecting its
/// output as it comes (a long output cannot fill a pipe and stall it). `during` acts while it
/// runs. After `timeout` seconds it is killed and the test fails by a thrown error.
public func runCommand(_ executable: String, _ arguments: [String], stdin: String = "",
                       environment: [String: String]? = nil, setprivOptions: [String] = [], timeout: Double = 60,
                       during: (Process) throws -> Void = { _ in }) throws -> Outcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let input = Pipe(), output = Pipe(), errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }

    final class Collected: @unchecked Sendable { var out = Data(), err = Data() }
    let collected = Collected()
    let readers = DispatchGroup()
    for (handle, isOut) in [(output.fileHandleForReading, true), (errors.fileHandleForReading, false)] {
        readers.enter()
        Thread.detachNewThread {
            let data = handle.readDataToEndOfFile()
            if isOut { collected.out = data } else { collected.err = data }
            readers.leave()
        }
    }
    do {
        try launch(process, setprivOptions: setprivOptions)
    } catch {
        try? output.fileHandleForWriting.close()
        try? errors.fileHandleForWriting.close()
        readers.wait()
        throw error
    }
    // Our copies of the write ends must go, or the readers never see the end of the output.
    try? output.fileHandleForWriting.close()
    try? errors.fileHandleForWriting.close()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try? input.fileHandleForWriting.close()
    try during(process)
    if exited.wait(timeout: .now() + timeout) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        exited.wait()
        readers.wait()
        throw TestFailure("\(executable) \(arguments) ran over \(timeout) s and was killed")
    }
    readers.wait()
    let byExit = process.terminationReason == .exit
    return Outcome(exitCode: byExit ? process.terminationStatus : nil, signal: byExit ? nil : process.terminationStatus,
                   stdout: String(decoding: collected.out, as: UTF8.self), stderr: String(decoding: collected.err, as: UTF8.self))
}

/// A process spinning on one core (`/bin/sh` running an empty loop) until killed; it dies with the
/// test process. Its output goes nowhere, so it can hold no pipe of ours open.
public final class BusyProcess {
    public let process = Process()

    public init() throws {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "while :; do :; done"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try launch(process)
    }

    public var pid: pid_t { process.processIdentifier }

    /// SIGKILL: the shell looks at SIGTERM only between commands, and this loop runs none.
    public func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
