import Foundation
import Lookahead
import LookaheadProtocol
import Testing
import TestSupport

/// The built `lookaheadctl` binary against a fake daemon, as a user or a script runs it.
@Suite struct LookaheadCtlTests {
    static let stats: JSONValue = [
        "committed_steps": 3, "accepted_steps": 2, "rejected_steps": 1, "alpha": 0.6666666666666666, "c": 0.48,
        "tokens_per_second": 14.9, "wall_seconds": 3.9,
    ]
    static let answer: JSONValue = [
        "text": "<think>\nIn April 48.\n\nIn May 24.\n</think>\n\n72 clips.", "thinking": "In April 48.\n\nIn May 24.",
        "answer": "72 clips.", "tokens": 58, "prompt_tokens": 76, "cached_tokens": 61, "finish_reason": "stop", "mode": "lookahead+sd", "stats": stats,
    ]

    /// Answers `ask` with three steps and `answer`, and the parameterless methods with what the protocol shows.
    static func daemon() throws -> FakeDaemon {
        try FakeDaemon { request in
            switch request.method {
            case "ask":
                return [.step(request, "<think>\nIn April 48.\n\n", phase: "thinking"),
                        .step(request, "In May 24.\n</think>", phase: "thinking"),
                        .step(request, "\n\n72 clips.", phase: "answer"),
                        .result(request, answer)]
            case "status":
                return [.result(request, ["state": "ready", "sessions": ["active": 2, "queued": 0], "jobs": [:]])]
            case "models":
                return [.result(request, ["models": [["role": "target", "arch": "qwen2"], ["role": "draft", "arch": "qwen2"]],
                                          "verifier": "embedding"])]
            case "metrics":
                return [.result(request, ["content_type": "text/plain; version=0.0.4", "text": "lookaheadd_generation_tokens_total 20133\n"])]
            case "version":
                return [.result(request, ["version": "0.1.0", "protocol": 1, "llama_cpp": "0c1e57098", "backend": "cpu"])]
            default:
                return [.error(request, .unknownMethod, "unknown method \(request.method)", field: "method")]
            }
        }
    }

    @Test func askStreamsStepsAndEndsWithStatistics() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "How many clips?"])

        #expect(run.exitCode == 0)
        #expect(run.stdout == "<think>\nIn April 48.\n\nIn May 24.\n</think>\n\n72 clips.")
        let speedup = String(format: "%.2f", SpeedupModel.asyncSpeedup(alpha: 2.0 / 3, c: 0.48, gamma: 4))
        #expect(run.stderr.contains("58 tokens, 3 steps, α 0.67 (2/3), 14.9 tok/s"))
        #expect(run.stderr.contains("speed-up estimate \(speedup)×, prompt 76 tokens (61 cached)"))
        #expect(daemon.requests.map(\.params) == [[
            "prompt": "How many clips?", "mode": "lookahead+sd", "gamma": 4, "width": 1, "temperature": 0.0,
            "top_p": 0.95, "top_k": 20, "seed": 0, "max_tokens": 512,
        ]])
    }

    @Test func askSendsTheOptionsGiven() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "--mode", "ar", "--gamma", "2", "--width", "2",
                                    "--verifier", "judge", "--temperature", "0.7", "--top-p", "0.9", "--top-k", "5",
                                    "--seed", "42", "--max-tokens", "64", "q"])
        #expect(run.exitCode == 0)
        #expect(daemon.requests.map(\.params) == [[
            "prompt": "q", "mode": "ar", "gamma": 2, "width": 2, "verifier": "judge", "temperature": 0.7,
            "top_p": 0.9, "top_k": 5, "seed": 42, "max_tokens": 64,
        ]])
    }

    @Test func askReadsThePromptFromStandardInput() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path], stdin: "from a pipe\n")
        #expect(run.exitCode == 0)
        #expect(daemon.requests.first?.params["prompt"] == "from a pipe\n")
    }

    @Test func askWithASystemMessageSendsAConversationAndDashReadsStandardInput() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "--system", "Answer in one line.", "-"], stdin: "How many clips?")
        #expect(run.exitCode == 0)
        #expect(daemon.requests.first?.params["prompt"] == nil)
        #expect(daemon.requests.first?.params["messages"] == [
            ["role": "system", "content": "Answer in one line."], ["role": "user", "content": "How many clips?"],
        ])
    }

    @Test func askRawAndStopGoAsTemplateFalseAndStop() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "--raw", "--stop", "\n\n", "--stop", "END", "def add(a, b):"])
        #expect(run.exitCode == 0)
        let params = daemon.requests.first?.params
        #expect(params?["prompt"] == "def add(a, b):" && params?["template"] == false)
        #expect(params?["stop"] == ["\n\n", "END"])
        let uncached = try lookaheadctl(["ask", "--socket", daemon.path, "--no-prompt-cache", "hi"])
        #expect(uncached.exitCode == 0 && daemon.requests.last?.params["cache_prompt"] == false)
        let refused = try lookaheadctl(["ask", "--socket", daemon.path, "--raw", "--system", "Be brief.", "hi"])
        #expect(refused.exitCode == 2 && refused.stderr.contains("--system needs the chat template"))
    }

    @Test func askJSONPrintsTheResultObject() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--json", "--socket", daemon.path, "How many clips?"])
        #expect(run.exitCode == 0)
        #expect(run.stdout.filter { $0 == "\n" }.count == 1 && run.stdout.hasSuffix("\n"))
        #expect(try JSONCodec.decode(Array(run.stdout.utf8)) == Self.answer)
        #expect(run.stderr.isEmpty)
    }

    @Test func noSpeedupEstimateWithoutADraftCost() throws {
        let daemon = try FakeDaemon { [.result($0, ["tokens": 5, "mode": "ar", "stats": ["alpha": 0, "c": 0]])] }
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "--mode", "ar", "q"])
        #expect(run.stderr.contains("speed-up estimate n/a"))
    }

    @Test(arguments: [true, false])
    func socketBeforeOrAfterTheSubcommand(before: Bool) throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        func command(_ subcommand: String, _ rest: String...) -> [String] {
            let socket = ["--socket", daemon.path]
            return (before ? socket + [subcommand] : [subcommand] + socket) + rest
        }
        let status = try lookaheadctl(command("status"))
        #expect(status.exitCode == 0)
        #expect(status.stdout.contains("state: ready"))
        #expect(try lookaheadctl(command("ask", "q")).exitCode == 0)
        #expect(daemon.requests.map(\.method) == ["status", "ask"])
    }

    @Test func socketFromTheEnvironment() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let run = try lookaheadctl(["version"], environment: ["LOOKAHEAD_SOCKET": daemon.path])
        #expect(run.exitCode == 0)
        #expect(run.stdout == "version: 0.1.0\nprotocol: 1\nllama cpp: 0c1e57098\nbackend: cpu\n")
    }

    @Test func queriesForPeopleAndForPrograms() throws {
        let daemon = try Self.daemon()
        defer { daemon.stop() }
        let status = try lookaheadctl(["status", "--socket", daemon.path])
        #expect(status.stdout == "state: ready\nsessions:\n  active: 2\n  queued: 0\njobs: none\n")
        let models = try lookaheadctl(["models", "--socket", daemon.path])
        #expect(models.stdout == "models:\n  - role: target\n    arch: qwen2\n  - role: draft\n    arch: qwen2\nverifier: embedding\n")
        let metrics = try lookaheadctl(["metrics", "--socket", daemon.path])
        #expect(metrics.stdout == "lookaheadd_generation_tokens_total 20133\n")
        let json = try lookaheadctl(["version", "--json", "--socket", daemon.path])
        #expect(try JSONCodec.decode(Array(json.stdout.utf8)) == ["version": "0.1.0", "protocol": 1, "llama_cpp": "0c1e57098", "backend": "cpu"])
    }

    @Test func exitsWith3WhenNoDaemonRuns() throws {
        let run = try lookaheadctl(["status", "--socket", "/nonexistent/lookaheadd.sock"])
        #expect(run.exitCode == 3)
        #expect(run.stderr.contains("lookaheadd is not running (no socket at /nonexistent/lookaheadd.sock)"))
        let stale = try staleSocket()
        defer { stale.remove() }
        let ask = try lookaheadctl(["ask", "--socket", stale.path, "q"])
        #expect(ask.exitCode == 3)
        #expect(ask.stderr.contains("stale socket?"))
    }

    @Test func exitsWith4WhenTheDaemonRejectsTheRequest() throws {
        let daemon = try FakeDaemon { [.error($0, .invalidParams, "mode must be one of ar, sd, lookahead, lookahead+sd, got 'fast'", field: "mode")] }
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "--mode", "fast", "q"])
        #expect(run.exitCode == 4)
        #expect(run.stderr.contains("invalid_params: mode must be one of"))
    }

    @Test func exitsWith5WhenTheDaemonCancels() throws {
        let daemon = try FakeDaemon { [.step($0, "<think>\n", phase: "thinking"), .error($0, .cancelled, "lookaheadd is stopping")] }
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "q"])
        #expect(run.exitCode == 5)
        #expect(run.stdout == "<think>\n")
    }

    @Test func interruptCancelsTheRequestAndExits130() throws {
        let asked = DispatchSemaphore(value: 0), cancelled = DispatchSemaphore(value: 0)
        let daemon = try FakeDaemon { request in
            switch request.method {
            case "ask":
                asked.signal()
                return [.step(request, "<think>\nSuppose", phase: "thinking")]
            default:
                cancelled.signal()
                let target = request.params["id"] ?? .null
                return [.result(request, ["cancelled": target]),
                        .frame(ErrorReply(id: target, error: ProtocolError(.cancelled, "cancelled by request")).json)]
            }
        }
        defer { daemon.stop() }
        let run = try lookaheadctl(["ask", "--socket", daemon.path, "Prove it."]) { process in
            #expect(asked.wait(timeout: .now() + 30) == .success, "no ask arrived")
            process.interrupt()
        }
        #expect(run.exitCode == 130)
        #expect(cancelled.wait(timeout: .now() + 10) == .success)
        let requests = daemon.requests
        #expect(requests.map(\.method) == ["ask", "cancel"])
        #expect(requests.count == 2 && requests[1].params["id"] == requests[0].id)
    }

    @Test func usageErrorsExitWith2() throws {
        #expect(try lookaheadctl(["frobnicate"]).exitCode == 2)
        let run = try lookaheadctl(["ask", "--threads", "3", "q"])
        #expect(run.exitCode == 2)
        #expect(run.stderr.contains("--threads needs --local"))
    }

    /// The GPU run's options are refused before any model loads, naming the option.
    @Test func benchCrowdAndPassOptionsAreCheckedUpFront() throws {
        for (args, message) in [(["bench", "--sessions", "1,0"], "--sessions: '1,0' is not a comma-separated list"),
                                (["bench", "--sessions", "8", "--svg", "x.svg"], "--sessions takes neither --svg"),
                                (["bench", "--sessions", "64", "--modes", "lookahead"], "more than the 256 sequence ids"),
                                (["passes", "--rows", "2,4"], "--rows: '2,4' is not a comma-separated list of positive counts including 1"),
                                (["passes", "--gpu-layers=-2"], "--gpu-layers must be -1 (all) or more"),
                                (["bench", "--rpc", "10.0.0.2:50052"], "--rpc '10.0.0.2:50052': not this host's loopback"),
                                (["bench", "--rpc", "127.0.0.1:1,127.0.0.1:1"], "--rpc 127.0.0.1:1 is listed twice"),
                                (["passes", "--rpc-models", "embedding"], "--rpc-models 'embedding' is not target or draft"),
                                (["bench", "--tensor-split", "0,0"], "--tensor-split at least one share must be above 0"),
                                (["ask", "--rpc", "127.0.0.1:1", "q"], "needs --local")] {
            let run = try lookaheadctl(args)
            #expect(run.exitCode == 2, "\(args)")
            #expect(run.stderr.contains(message), "\(args): \(run.stderr)")
        }
    }

    @Test func helpDocumentsExitStatusesAndCompletionsWork() throws {
        let help = try lookaheadctl(["--help"])
        #expect(help.exitCode == 0)
        #expect(help.stdout.contains("130  interrupted"))
        for shell in ["bash", "zsh", "fish"] {
            let script = try lookaheadctl(["--generate-completion-script", shell])
            #expect(script.exitCode == 0)
            #expect(script.stdout.contains("status") && script.stdout.contains("socket"))
        }
    }
}
