import ArgumentParser
import Foundation
import LookaheadProtocol

struct LookaheadCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookaheadctl",
        abstract: "Ask a reasoning model, faster, with Lookahead Reasoning.",
        discussion: """
            Talks to lookaheadd over its Unix socket; `ask --local` loads the models in this process instead.
            Shell completions: lookaheadctl --generate-completion-script bash|zsh|fish.

            Exit status:
            \(ExitStatus.table)
            """,
        subcommands: [Ask.self, Bench.self, Passes.self, Batch.self, Status.self, Models.self, Metrics.self, Version.self])

    @OptionGroup var connection: ConnectionOptions
}

/// `--socket`, given before the subcommand or after it. The root command and every subcommand
/// include this group: ArgumentParser hands the value the root parsed to a subcommand's group of
/// the same type.
struct ConnectionOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "lookaheadd's socket (default: $LOOKAHEAD_SOCKET, else \(SocketPath.system) if it exists, else lookaheadd/lookaheadd.sock under $XDG_RUNTIME_DIR or ~/.cache).",
        valueName: "path"), completion: .file())
    var socket: String?

    func connect() throws(ClientError) -> Client {
        try Client(path: socket ?? SocketPath.default(environment: ProcessInfo.processInfo.environment))
    }
}

/// What a script can tell from lookaheadctl's exit status.
enum ExitStatus: Int32, CaseIterable {
    case success = 0
    case failure = 1
    case usage = 2
    case unreachable = 3
    case rejected = 4
    case cancelled = 5
    case interrupted = 130

    init(_ error: ClientError) {
        switch error {
        case .unreachable, .disconnected: self = .unreachable
        case .rejected(let error) where error.code == .cancelled: self = .cancelled
        case .rejected(let error) where error.code == .internal: self = .failure
        case .rejected: self = .rejected
        case .malformedReply: self = .failure
        }
    }

    var meaning: String {
        switch self {
        case .success: return "success"
        case .failure: return "failure (including an internal error of lookaheadd)"
        case .usage: return "usage error"
        case .unreachable: return "lookaheadd is not running or unreachable, or the connection broke"
        case .rejected: return "lookaheadd rejected the request (invalid_params, too_large, busy, …)"
        case .cancelled: return "lookaheadd cancelled the request"
        case .interrupted: return "interrupted (Ctrl-C); a request in flight is cancelled first"
        }
    }

    static var table: String {
        allCases.map { "  \(String($0.rawValue).padding(toLength: 5, withPad: " ", startingAt: 0))\($0.meaning)" }
            .joined(separator: "\n")
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension FileHandle {
    func write(_ s: String) { write(Data(s.utf8)) }
}
