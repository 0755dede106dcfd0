import DaemonHarness
import Foundation
import LookaheadProtocol
import Testing

/// Daemons for these tests (`DaemonProcess`): each in a temp directory of its own, with a config
/// merged onto small defaults, loading the cached default models.
enum RunningDaemon {
    /// Small enough for several daemons side by side on a 24 GiB, 2-core machine.
    static let baseConfig = "threads = 2\ncontext_length = 4096\nmax_prompt_tokens = 2048\n"

    /// The base settings with `overrides` (whole `key = value` lines) replacing keys they name.
    static func merged(_ overrides: String) -> String {
        func key(_ line: Substring) -> String { String(line.split(separator: "=").first ?? "").trimmingCharacters(in: .whitespaces) }
        let replaced = Set(overrides.split(separator: "\n").map(key))
        return baseConfig.split(separator: "\n").filter { !replaced.contains(key($0)) }.map { $0 + "\n" }.joined() + overrides
    }

    /// `config`: lines of a lookaheadd.conf for this run; `arguments` replace the usual flags when given.
    static func start(config: String = "", arguments: [String]? = nil, environment: [String: String] = [:],
                      launcher: [String] = [], waitForSocket: Bool = true) throws -> DaemonProcess {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lookaheadd-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let socket = directory.appendingPathComponent("l.sock").path
        let conf = directory.appendingPathComponent("lookaheadd.conf")
        try merged(config).write(to: conf, atomically: true, encoding: .utf8)
        let flags = arguments ?? ["--config", conf.path, "--socket", socket,
                                  "--state-dir", directory.appendingPathComponent("state").path]
        return try DaemonProcess(arguments: flags, socket: socket, log: directory.appendingPathComponent("daemon.log").path,
                                 environment: environment, launcher: launcher, waitForSocket: waitForSocket,
                                 owning: directory.path)
    }
}

extension DaemonProcess {
    func status() throws -> JSONObject { try #require(try client().call(method: "status").objectValue) }
}

typealias DaemonTestError = HarnessError

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
