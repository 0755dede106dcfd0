import ArgumentParser
import Foundation
import Llama
import Lookahead
import LookaheadDaemon
import LookaheadProtocol
import StepBatcher

/// Options every way of asking shares: in this process (`--local`) or through the daemon.
struct AskOptions: ParsableArguments {
    @Option(help: "ar | sd | lookahead | lookahead+sd") var mode: String = "lookahead+sd"
    @Option(help: "Draft steps kept ahead (γ).") var gamma: Int = 4
    @Option(help: "Draft candidates per position (W: 1 or 2).") var width: Int = 1
    @Option(help: "exact | normalized | embedding | judge (default: the daemon's configured verifier; embedding with --local, where embedding:T, judge:MODEL and random:P work too)")
    var verifier: String?
    @Option(help: "0 = greedy.") var temperature: Float = 0
    @Option(name: .customLong("top-p")) var topP: Float = 0.95
    @Option(name: .customLong("top-k")) var topK: Int = 20
    @Option var seed: UInt64 = 0
    @Option(name: .customLong("max-tokens")) var maxTokens: Int = 512
    @Option(name: .customLong("proposal-tokens"),
            help: "Token-level proposals per branch and pass (k; --local only, default \(SessionConfig().proposalTokens)).")
    var proposalTokens: Int?
    @Flag(name: .customLong("no-adaptive"),
          help: "Keep every speculation on whatever it costs (no fallback, all proposals): measures the algorithm itself.")
    var noAdaptive = false
    @Option(help: "End the answer before this text (repeatable; matched after the thinking).") var stop: [String] = []
    @Flag(name: .customLong("no-prompt-cache"),
          help: "Prefill the whole prompt, and leave nothing to the daemon's prefix cache (cache_prompt false).")
    var noPromptCache = false

    func sessionConfig() throws -> SessionConfig {
        guard let m = Mode(rawValue: mode) else {
            throw ValidationError("--mode: '\(mode)' is not one of \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var c = SessionConfig(mode: m)
        c.gamma = gamma
        c.width = width
        c.maxTokens = maxTokens
        if let proposalTokens { c.proposalTokens = proposalTokens }
        c.adaptive = !noAdaptive
        c.stop = stop
        c.sampling = temperature > 0 ? SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed) : .greedy
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }

    /// The `ask` params of docs/protocol.md. The daemon judges them (a bad one exits with 4); the
    /// verifier goes only when chosen, so the daemon's configured one applies otherwise.
    func params(prompt: PromptInput) -> Params {
        var params: Params = [
            "mode": .string(mode), "gamma": JSONValue(gamma), "width": JSONValue(width),
            "temperature": JSONValue(temperature), "top_p": JSONValue(topP), "top_k": JSONValue(topK),
            "seed": JSONValue(seed), "max_tokens": JSONValue(maxTokens),
        ]
        switch prompt {
        case .text(let text):
            params.object["prompt"] = .string(text)
        case .raw(let text):
            params.object["prompt"] = .string(text)
            params.object["template"] = .bool(false)
        case .chat(let messages):
            params.object["messages"] = .array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) })
        }
        if !stop.isEmpty { params.object["stop"] = .array(stop.map { .string($0) }) }
        if let verifier { params.object["verifier"] = .string(verifier) }
        if noAdaptive { params.object["adaptive"] = .bool(false) }
        if noPromptCache { params.object["cache_prompt"] = .bool(false) }
        return params
    }
}

struct Ask: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask one question and stream the committed steps.",
        discussion: """
            Thinking is shown dimmed on a terminal (unless NO_COLOR is set), the answer plainly; a line of \
            statistics follows on standard error. Ctrl-C cancels the request and exits with 130.
            """)

    @Flag(help: "Load the models in this process instead of asking the daemon.") var local = false
    @OptionGroup var options: AskOptions
    @Flag(help: "Print one JSON object (text, answer, tokens, stats) instead of streaming.") var json = false
    @Flag(help: "Stream steps as they are committed (default unless --json).") var stream = false
    @Option(help: "Engine threads (--local only, default \(EngineConfig().threads)).") var threads: Int?
    @Flag(name: .customLong("batch-invariant"),
          help: "No weight repacking, ggml's reference paths (--local only; the daemon's batch_invariant).")
    var batchInvariant = false
    @OptionGroup(title: "Models (--local only)") var models: ModelOptions
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "A system message before the question (the prompt becomes a conversation in the target's chat template).")
    var system: String?
    @Flag(help: "Let the model continue the prompt as it is, without the chat template.") var raw = false
    @Argument(help: "The question; read from standard input when absent or '-'.") var prompt: String?

    func validate() throws {
        guard !local else { return }
        let localOnly = [("--threads", threads != nil), ("--models, --target, --draft, --gpu-layers, --rpc, --rpc-models or --tensor-split", models.given), ("--batch-invariant", batchInvariant),
                         ("--proposal-tokens", options.proposalTokens != nil)]
        if let (flag, _) = localOnly.first(where: \.1) { throw ValidationError("\(flag) needs --local") }
    }

    func run() throws {
        if local {
            ThreadWaitPolicy.ensureInEnvironment()
            try askLocally()
        } else {
            try askDaemon()
        }
    }

    private func question() throws -> PromptInput {
        let question = prompt.flatMap { $0 == "-" ? nil : $0 }
            ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        guard !question.trimmingWhitespace.isEmpty else { throw ValidationError("the prompt is empty") }
        if raw {
            guard system == nil else { throw ValidationError("--system needs the chat template; it cannot go with --raw") }
            return .raw(question)
        }
        guard let system else { return .text(question) }
        return .chat([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: question)])
    }

    private func askDaemon() throws {
        let question = try question()
        let client = try connection.connect()
        let request = Request(id: client.makeID(), method: "ask", params: options.params(prompt: question))
        let interruption = Interruption(cancelling: request, through: client)
        let steps = StepPrinter(enabled: !json)
        let result: JSONValue
        do {
            result = try client.call(request) { event in
                guard event.event == "step", let text = event.data["text"]?.stringValue else { return }
                steps.print(text, thinking: event.data["phase"]?.stringValue == "thinking")
            }
        } catch {
            // Our own cancel's answer raced the interrupt thread's exit: the status is still 130.
            if error.code == .cancelled && interruption.happened { throw ExitCode(ExitStatus.interrupted.rawValue) }
            throw error
        }
        report(result)
    }

    private func askLocally() throws {
        let config = try options.sessionConfig()
        let question = try question()
        var engineConfig = try models.engineConfig()
        if let verifier = options.verifier {
            do { engineConfig.verifier = try VerifierSpec(parsing: verifier) } catch { throw ValidationError("--verifier \(error)") }
        }
        if let threads { engineConfig.threads = threads }
        engineConfig.batchInvariant = batchInvariant
        engineConfig.sequences = max(1, config.targetSequences)
        if !json { FileHandle.standardError.write("loading models from \(models.description) …\n") }
        let engines: Engines
        do {
            engines = try Engines(config: engineConfig, loadDraft: config.mode.usesDraft)
        } catch { throw CLIError("\(error)") }

        let steps = StepPrinter(enabled: !json)
        let result = try engines.generate(question, config: config) { update in
            guard case .step(let text, let answer, _) = update else { return }
            steps.print(text, thinking: !answer)
        }
        report(.object(AskResult(result, mode: config.mode, verifier: engineConfig.verifier.kind).json))
    }

    /// The result object as one JSON line with `--json`; else the statistics line on standard error.
    private func report(_ result: JSONValue) {
        if json {
            FileHandle.standardOutput.write("\(result)\n")
        } else {
            FileHandle.standardError.write(statsLine(result, gamma: options.gamma))
        }
    }
}

/// Streams committed steps to standard output. Thinking is dimmed only on a terminal, and not
/// when NO_COLOR is set to anything non-empty (no-color.org).
struct StepPrinter {
    let enabled: Bool
    private let dims = isatty(STDOUT_FILENO) == 1 && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty

    init(enabled: Bool) { self.enabled = enabled }

    func print(_ text: String, thinking: Bool) {
        guard enabled else { return }
        FileHandle.standardOutput.write(thinking && dims ? "\u{1B}[2m\(text)\u{1B}[0m" : text)
    }
}

/// The line after a streamed answer, from an `ask` result: steps, α as accepted/verified draft
/// steps, speed, and what the paper's async model predicts for the measured α and c at this γ.
func statsLine(_ result: JSONValue, gamma: Int) -> String {
    let object = result.objectValue ?? [:]
    let stats = object["stats"]?.objectValue ?? [:]
    func int(_ key: String) -> Int64 { stats[key]?.intValue ?? 0 }
    func number(_ key: String) -> Double { stats[key]?.doubleValue ?? 0 }
    func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    let accepted = int("accepted_steps"), verified = accepted + int("rejected_steps")
    let alpha = number("alpha"), c = number("c")
    // c = 0: no draft pass was measured (ar, sd), and the model has nothing to predict from.
    let speedup = c > 0 ? fixed(SpeedupModel.asyncSpeedup(alpha: alpha, c: c, gamma: gamma), 2) + "×" : "n/a"
    let tokens = object["tokens"]?.intValue ?? 0
    let mode = object["mode"]?.stringValue ?? "?"
    let prompt = object["prompt_tokens"]?.intValue ?? 0, cached = object["cached_tokens"]?.intValue ?? 0
    return "\n— \(tokens) tokens, \(int("committed_steps")) steps, α \(fixed(alpha, 2)) (\(accepted)/\(verified)), "
        + "\(fixed(number("tokens_per_second"), 1)) tok/s, \(fixed(number("wall_seconds"), 1)) s, mode \(mode), "
        + "speed-up estimate \(speedup), prompt \(prompt) tokens (\(cached) cached)\n"
}

