import ArgumentParser
import Foundation
import Llama
import Lookahead
import StepBatcher

struct LookaheadCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookaheadctl",
        abstract: "Ask a reasoning model, faster, with Lookahead Reasoning.",
        subcommands: [Ask.self])
}

/// Options every way of asking shares (locally now, through the daemon later).
struct AskOptions: ParsableArguments {
    @Option(help: "ar | sd | lookahead | lookahead+sd") var mode: String = "lookahead+sd"
    @Option(help: "Draft steps kept ahead (γ).") var gamma: Int = 4
    @Option(help: "Draft candidates per position (W: 1 or 2).") var width: Int = 1
    @Option(help: "exact | embedding | judge") var verifier: String = "embedding"
    @Option(help: "0 = greedy.") var temperature: Float = 0
    @Option(name: .customLong("top-p")) var topP: Float = 0.95
    @Option(name: .customLong("top-k")) var topK: Int = 20
    @Option var seed: UInt64 = 0
    @Option(name: .customLong("max-tokens")) var maxTokens: Int = 512
    @Option(name: .customLong("proposal-tokens"), help: "Token-level proposals per branch and pass (k).") var proposalTokens: Int = 4

    func sessionConfig() throws -> SessionConfig {
        guard let m = Mode(rawValue: mode) else {
            throw ValidationError("--mode: '\(mode)' is not one of \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var c = SessionConfig(mode: m)
        c.gamma = gamma
        c.width = width
        c.maxTokens = maxTokens
        c.proposalTokens = proposalTokens
        c.sampling = temperature > 0 ? SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed) : .greedy
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }
}

struct Ask: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask one question and stream the committed steps.")

    @Flag(help: "Load the models in this process instead of asking the daemon.") var local = false
    @OptionGroup var options: AskOptions
    @Flag(help: "Print one JSON object (text, answer, tokens, stats) instead of streaming.") var json = false
    @Flag(help: "Stream steps as they are committed (default unless --json).") var stream = false
    @Option(help: "Engine threads.") var threads: Int = 2
    @Option(name: .customLong("models"), help: "Directory with target.gguf, draft.gguf, embed.gguf.")
    var modelDirectory: String = EngineConfig.defaultModelDirectory
    @Argument(help: "The question; read from standard input when absent.") var prompt: String?

    func run() throws {
        guard local else {
            throw ValidationError("the daemon client is not built yet: use --local")
        }
        let config = try options.sessionConfig()
        let question = try prompt ?? readStdin()
        guard !question.trimmingWhitespace.isEmpty else { throw ValidationError("the prompt is empty") }

        var engineConfig = EngineConfig(modelDirectory: modelDirectory)
        engineConfig.verifier = options.verifier
        engineConfig.threads = threads
        engineConfig.sequences = max(1, config.targetSequences)
        engineConfig.contextLength = 4096
        if !json { FileHandle.standardError.write("loading models from \(modelDirectory) …\n") }
        let engines: Engines
        do {
            engines = try Engines(config: engineConfig, loadDraft: config.mode.usesDraft)
        } catch { throw CLIError("\(error)") }

        let tty = isatty(STDOUT_FILENO) == 1
        let result = try engines.generate(question, config: config) { event in
            guard !json, case .step(let text, let answer, _) = event else { return }
            let shown = tty && !answer ? "\u{1B}[2m\(text)\u{1B}[0m" : text
            FileHandle.standardOutput.write(shown)
        }
        if json {
            let object: [String: Any] = [
                "text": result.text, "answer": result.answer, "tokens": result.tokens.count,
                "finish_reason": result.finishReason.rawValue, "mode": config.mode.rawValue,
                "stats": statsObject(result.stats, verifier: engines.verifier),
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            FileHandle.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            let s = result.stats
            FileHandle.standardError.write(String(
                format: "\n— %d tokens, %d steps, α %.2f (%d/%d), %.1f tok/s, %.1f s, mode %@\n",
                result.tokens.count, s.committedSteps, s.alpha, s.acceptedDraftSteps,
                s.acceptedDraftSteps + s.rejectedDraftSteps, s.tokensPerSecond, s.wallSeconds, config.mode.rawValue))
        }
    }
}

func statsObject(_ s: SessionStats, verifier: VerifierChain) -> [String: Any] {
    var proposers: [String: Any] = [:]
    for p in [Proposer.ngram, .draftStep] {
        proposers[p.rawValue] = ["proposed": s.proposed[p] ?? 0, "accepted": s.acceptedProposals[p] ?? 0]
    }
    return [
        "committed_steps": s.committedSteps, "accepted_steps": s.acceptedDraftSteps,
        "rejected_steps": s.rejectedDraftSteps, "undrafted_steps": s.undraftedSteps,
        "identical_steps": s.identicalSteps, "alpha": s.alpha, "c": s.costRatio,
        "draft_passes": s.draftPasses, "target_passes": s.targetPasses,
        "draft_seconds": s.draftSeconds, "target_seconds": s.targetSeconds, "verify_seconds": s.verifySeconds,
        "draft_tokens": s.draftTokens, "target_tokens": s.targetTokens,
        "wall_seconds": s.wallSeconds, "tokens_per_second": s.tokensPerSecond,
        "generated_tokens": s.generatedTokens, "proposers": proposers,
        "verifier": ["name": verifier.name, "exact_accepts": verifier.exact.accepts,
                     "semantic_calls": verifier.semanticCounts.calls, "semantic_accepts": verifier.semanticCounts.accepts,
                     "guard_vetoes": verifier.guardVetoes],
    ]
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func readStdin() throws -> String {
    String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
}

extension FileHandle {
    func write(_ s: String) { write(Data(s.utf8)) }
}
