import Llama
import Lookahead
#if canImport(Glibc)
import Glibc
#endif

/// Where the models live and how big the contexts are. Defaults come from the cache that
/// `make models` fills; `LOOKAHEAD_MODELS` points elsewhere.
public struct EngineConfig: Sendable, Equatable {
    public var targetPath: String
    public var draftPath: String
    public var embedPath: String
    /// "exact", "embedding", "judge", or "random:P" (accepts with probability P: synthetic benchmarks).
    public var verifier: String = "embedding"
    /// Judge weights: "draft", "target" or a GGUF path.
    public var judgeModel: String = "draft"
    public var embeddingThreshold: Float = 0.95
    public var numericGuard = true
    public var threads: Int = 2
    public var gpuLayers: Int32 = 0
    public var contextLength: Int = 4096
    public var batchSize: Int = 512
    /// Sequence ids per context: sessions × (1 + γ·W) must fit.
    public var sequences: Int = 32
    /// Every row gets the same arithmetic whatever else shares its pass (no weight repacking,
    /// ggml's reference paths): greedy answers do not depend on load, and speculation with the
    /// exact verifier gives the target's tokens bit for bit. Off (the default, as in vLLM and
    /// SGLang): repacked weights and fused kernels, ≈ 20 % faster decoding here, and answers that
    /// can split from `ar` where the target's own choice is a near-tie.
    public var batchInvariant = false

    /// `LOOKAHEAD_MODELS`, else systemd's `CACHE_DIRECTORY` (the service's CacheDirectory=), else
    /// the per-user cache that `make models` fills.
    /// An empty variable counts as unset (a launcher may pass `VAR=`).
    public static var defaultModelDirectory: String {
        func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        if let dir = env("LOOKAHEAD_MODELS") { return dir }
        if let dir = env("CACHE_DIRECTORY") { return dir + "/models" }
        let cache = env("XDG_CACHE_HOME") ?? (env("HOME").map { $0 + "/.cache" } ?? "/var/cache")
        return cache + "/lookaheadd/models"
    }

    public init(modelDirectory: String = EngineConfig.defaultModelDirectory) {
        targetPath = modelDirectory + "/target.gguf"
        draftPath = modelDirectory + "/draft.gguf"
        embedPath = modelDirectory + "/embed.gguf"
    }
}

/// The loaded models and their contexts. Created and used on one thread.
public final class Engines {
    public let config: EngineConfig
    public let targetModel: Model
    public let draftModel: Model?
    public let target: LlamaEngine
    public let draft: LlamaEngine?
    /// Verifier chains by name: always `exact`, plus the configured one.
    public let verifiers: [String: VerifierChain]
    public var verifier: VerifierChain { verifiers[config.verifier]! }
    public let embedModel: Model?

    public init(config: EngineConfig, loadDraft: Bool = true) throws {
        self.config = config
        let repack = !config.batchInvariant
        targetModel = try Model(path: config.targetPath, gpuLayers: config.gpuLayers, repack: repack)
        let params = ContextParams(contextLength: config.contextLength, batchSize: config.batchSize,
                                   sequences: config.sequences, threads: config.threads,
                                   batchInvariant: config.batchInvariant)
        target = LlamaEngine(context: try Context(model: targetModel, params: params))
        if loadDraft {
            let model = try Model(path: config.draftPath, gpuLayers: config.gpuLayers, repack: repack)
            draftModel = model
            draft = LlamaEngine(context: try Context(model: model, params: params))
        } else {
            draftModel = nil
            draft = nil
        }
        var chains = ["exact": VerifierChain(semantic: nil)]
        var embed: Model?
        switch config.verifier {
        case "exact":
            break
        case "embedding":
            let model = try Model(path: config.embedPath)
            embed = model
            chains["embedding"] = VerifierChain(
                semantic: try EmbeddingVerifier(model: model, threshold: config.embeddingThreshold, threads: config.threads),
                numericGuard: config.numericGuard)
        case "judge":
            chains["judge"] = try Engines.makeJudge(config, target: targetModel, draft: draftModel)
        case let spec where spec.hasPrefix("random:"):
            guard let random = RandomVerifier(spec: spec) else {
                throw EngineError.badConfig(key: "verifier", reason: "'\(spec)': random:P needs 0 ≤ P ≤ 1")
            }
            // No numeric guard: its vetoes would pin α below P. Only identical texts skip the draw.
            chains[spec] = VerifierChain(semantic: random, numericGuard: false)
        default:
            throw EngineError.badConfig(
                key: "verifier", reason: "'\(config.verifier)' is not exact, embedding, judge or random:P")
        }
        verifiers = chains
        embedModel = embed
    }

    /// The engine's thread count, kept below `config.threads` while other processes hold the cores.
    public private(set) lazy var threadGovernor = ThreadGovernor(maximum: config.threads)

    /// Called by the tick loops after every tick; reads the CPU counters once per interval and
    /// moves both models' contexts to the governor's thread count when it changes.
    public func governThreads(now: Double = monotonicSeconds()) {
        guard threadGovernor.isDue(at: now), let sample = CPUSample.read(wall: now),
              let n = threadGovernor.observe(sample) else { return }
        target.context.setThreads(n)
        draft?.context.setThreads(n)
    }

    /// The runner for in-process requests (`generate`): one for the engines' life, so the pass
    /// costs it measures carry from one request to the next.
    public private(set) lazy var runner = makeRunner()

    public func makeRunner() -> TickRunner {
        TickRunner(target: target, draft: draft, verifiers: verifiers, defaultVerifier: config.verifier)
    }

    /// The judge reuses the draft's or the target's weights (a context of its own) or loads a GGUF.
    static func makeJudge(_ config: EngineConfig, target: Model, draft: Model?) throws -> VerifierChain {
        let model: Model
        switch config.judgeModel {
        case "target": model = target
        case "draft":
            guard let draft else { throw EngineError.badConfig(key: "judge_model", reason: "'draft' needs the draft model loaded") }
            model = draft
        default: model = try Model(path: config.judgeModel, gpuLayers: config.gpuLayers)
        }
        return VerifierChain(semantic: try JudgeVerifier(model: model, threads: config.threads),
                             numericGuard: config.numericGuard)
    }

    /// Tokens of a user prompt, formatted with the target's chat template when it has one.
    public func promptTokens(_ text: String) throws -> [Token] {
        if targetModel.chatTemplate != nil {
            let formatted = try targetModel.applyChatTemplate([ChatMessage(role: "user", content: text)])
            return try targetModel.vocab.tokenize(formatted, addSpecial: true, parseSpecial: true)
        }
        return try targetModel.vocab.tokenize(text, addSpecial: true, parseSpecial: false)
    }
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case badConfig(key: String, reason: String)
    public var description: String {
        switch self { case .badConfig(let k, let r): return "config key '\(k)': \(r)" }
    }
}
