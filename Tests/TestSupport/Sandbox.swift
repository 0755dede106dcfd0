import Foundation
import LookaheadProtocol

/// A temporary directory for one test's daemons: socket, state directory, config, log, inputs.
/// Every daemon started in it uses the same state directory, so a restart finds the jobs of the run
/// before. The directory goes when the sandbox and every daemon started in it are released.
public final class Sandbox {
    public let path: String
    /// Config lines every daemon started here gets; `start(config:)` lines replace the keys they name.
    public let base: String
    public var socket: String { path + "/lookaheadd.sock" }
    public var state: String { path + "/state" }
    public var configPath: String { path + "/lookaheadd.conf" }

    /// Two threads and a short context: several daemons fit side by side on a small 2-core machine.
    public static let smallConfig = "threads = 2\ncontext_length = 4096\nmax_prompt_tokens = 2048\n"

    public init(base: String = Sandbox.smallConfig) throws {
        path = try makeTemporaryDirectory("lookaheadd-test")
        self.base = base
    }

    deinit { removeTree(path) }

    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// `base` with `overrides` (whole `key = value` lines) replacing the keys they name.
    public static func merged(_ base: String, _ overrides: String) -> String {
        func key(_ line: Substring) -> String { String(line.split(separator: "=").first ?? "").trimmingCharacters(in: .whitespaces) }
        let replaced = Set(overrides.split(separator: "\n").map(key))
        return base.split(separator: "\n").filter { !replaced.contains(key($0)) }.map { $0 + "\n" }.joined() + overrides
    }

    /// Starts the built lookaheadd on the cached default models with `base` merged with `config`
    /// as its lookaheadd.conf, on this sandbox's socket and state directory (`arguments` replace
    /// those flags when given). With `waitForSocket`, returns once it answers `status`.
    public func start(config: String = "", arguments: [String]? = nil, environment: [String: String] = [:],
                      launcher: [String] = [], waitForSocket: Bool = true) throws -> DaemonProcess {
        try write("lookaheadd.conf", Sandbox.merged(base, config))
        let flags = arguments ?? ["--config", configPath, "--socket", socket, "--state-dir", state]
        return try DaemonProcess(arguments: flags, socket: socket, log: path + "/daemon.log", environment: environment,
                                 launcher: launcher, waitForSocket: waitForSocket, keepingAlive: self)
    }
}
