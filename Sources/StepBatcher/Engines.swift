import Llama
import Lookahead
#if canImport(Glibc)
import Glibc
#endif

/// Where the models live and how the contexts are built. The defaults here are the engine's
/// defaults everywhere: the daemon's configuration, `ask --local` and `bench` start from them.
public struct EngineConfig: Sendable, Equatable {
    public var targetPath: String
    public var draftPath: String
    public var embedPath: String
    public var verifier: VerifierSpec = .default
    public var numericGuard = true
    /// The most threads a pass may use (the thread governor may use fewer).
    public var threads = 2
    /// Layers offloaded to the GPU, -1 all: a build of llama.cpp without a GPU backend offloads none.
    /// For a model placed on `rpcServers`, how many of its layers leave this host's CPU.
    public var gpuLayers: Int32 = -1
    /// `rpc-server` endpoints ("host:port") lending their devices to the `rpcModels`, which split
    /// their offloaded layers over these, in this order, then the local GPUs.
    public var rpcServers: [RPCEndpoint] = []
    /// The models placed on `rpcServers`: the target, typically; the draft and the verifiers stay
    /// local unless named.
    public var rpcModels: Set<ModelRole> = [.target]
    /// Those models' shares of offloaded layers per device (the RPC devices, then the local GPUs);
    /// nil: in proportion to their free memory.
    public var tensorSplit: [Float]?
    public var contextLength = 8192
    public var batchSize = 512
    /// Sequence ids per context: sessions × (1 + γ·W) must fit (at most `maxSequences`).
    public var sequences = 32
    /// Every row gets the same arithmetic whatever else shares its pass (no weight repacking,
    /// ggml's reference paths): greedy answers do not depend on load, and speculation with the
    /// exact verifier gives the target's tokens bit for bit. Off (the default, as in vLLM and
    /// SGLang): repacked weights and fused kernels, faster decoding (docs/benchmarks.md), and
    /// answers that can split from `ar` where the target's own choice is a near-tie.
    public var batchInvariant = false

    /// Where a model's offloaded layers go: for one of `rpcModels`, the RPC servers' devices
    /// (connected here: a server that is down is an error naming it), then the local GPUs; else
    /// the local GPUs alone. llama.cpp gives the last device the last layers and the output layer,
    /// so with a local GPU the logits (a vocabulary's worth of floats per row) never cross the
    /// network; only hidden states do.
    public func placement(for role: ModelRole) throws -> Placement {
        guard rpcModels.contains(role) else { return Placement() }
        let remote = try rpcServers.flatMap { try RemoteDevices.connect($0.text, host: $0.host, port: $0.port) }
        guard !remote.isEmpty || tensorSplit != nil else { return Placement() }
        return Placement(devices: remote + Device.localGPUs, tensorSplit: tensorSplit)
    }

    /// llama.cpp allows 256 sequence ids; batch invariance keeps one of them (`Context`).
    public var maxSequences: Int { Context.maxSequences(batchInvariant: batchInvariant) }

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

/// The loaded models and their contexts. Created and used on one thread (the engine thread).
public final class Engines {
    public let config: EngineConfig
    public let targetModel: Model
    public let draftModel: Model?
    public let target: LlamaEngine
    public let draft: LlamaEngine?
    /// Whether the draft reads the target's token ids as they are; else steps cross as text and
    /// each model reads the prompt in its own tokens (true without a draft).
    public let sharesVocabulary: Bool
    /// Verifier chains: always `exact`, plus the configured one.
    public let verifiers: [VerifierKind: VerifierChain]
    public let embedModel: Model?

    public init(config: EngineConfig, loadDraft: Bool = true) throws {
        self.config = config
        let repack = !config.batchInvariant
        targetModel = try Model(path: config.targetPath, gpuLayers: config.gpuLayers, repack: repack,
                                placement: try config.placement(for: .target))
        let params = ContextParams(contextLength: config.contextLength, batchSize: config.batchSize,
                                   sequences: config.sequences, threads: config.threads,
                                   batchInvariant: config.batchInvariant)
        target = LlamaEngine(context: try Context(model: targetModel, params: params))
        if loadDraft {
            let model = try Model(path: config.draftPath, gpuLayers: config.gpuLayers, repack: repack,
                                  placement: try config.placement(for: .draft))
            // The draft reads the whole conversation the target reads: past its trained context
            // it would write noise that is never accepted.
            let reach = min(config.contextLength, targetModel.trainedContext)
            guard model.trainedContext >= reach else {
                throw EngineError.badConfig(key: "draft_model", reason: """
                    \(config.draftPath) was trained on \(model.trainedContext) tokens of context, but the target \
                    \(config.targetPath) reads up to \(reach) (the smaller of context_length and its own): choose a \
                    draft with a longer context, or set context_length to at most \(model.trainedContext)
                    """)
            }
            let engine = LlamaEngine(context: try Context(model: model, params: params))
            draftModel = model
            draft = engine
            sharesVocabulary = engine.text.sharesVocabulary(with: target.text)
        } else {
            draftModel = nil
            draft = nil
            sharesVocabulary = true
        }
        // The model-free verifiers cost nothing to keep: every daemon offers both.
        var chains: [VerifierKind: VerifierChain] = [.exact: VerifierChain(semantic: nil, match: .bytes),
                                                     .normalized: VerifierChain(semantic: nil, match: .folded)]
        var embed: Model?
        switch config.verifier {
        case .exact, .normalized:
            break
        case .embedding(let threshold):
            let model = try Model(path: config.embedPath)
            embed = model
            chains[.embedding] = VerifierChain(
                semantic: try EmbeddingVerifier(model: model, threshold: threshold, threads: config.threads),
                numericGuard: config.numericGuard)
        case .judge(let judge, let margin):
            let model: Model
            switch judge {
            case .target: model = targetModel
            case .draft:
                guard let draftModel else { throw EngineError.badConfig(key: "judge_model", reason: "'draft' needs the draft model loaded") }
                model = draftModel
            case .path(let path): model = try Model(path: path, gpuLayers: config.gpuLayers)
            }
            chains[.judge] = VerifierChain(semantic: try JudgeVerifier(model: model, threads: config.threads, margin: margin),
                                           numericGuard: config.numericGuard)
        case .random(let acceptance):
            // No numeric guard: its vetoes would pin α below P. Only identical texts skip the draw.
            chains[.random] = VerifierChain(semantic: RandomVerifier(acceptance: acceptance), numericGuard: false)
        }
        verifiers = chains
        embedModel = embed
    }

    /// What a scheduler drives: these engines, their verifiers, and the thread count of both contexts.
    public var engineSet: EngineSet {
        EngineSet(target: target, draft: draft, verifiers: verifiers, defaultVerifier: config.verifier.kind,
                  sequences: config.sequences, maxThreads: config.threads) { [target, draft] n in
            target.context.setThreads(n)
            draft?.context.setThreads(n)
        }
    }

    /// A scheduler over these engines. One at a time drives them: the daemon's batcher, or `scheduler`.
    public func makeScheduler(limits: BatcherLimits = BatcherLimits(), prefixCacheCells: Int? = nil) -> Scheduler {
        Scheduler(engines: engineSet, limits: limits, prefixCacheCells: prefixCacheCells)
    }

    /// The scheduler for in-process requests (`generate`): one for the engines' life, so the pass
    /// costs it measures carry from one request to the next.
    public private(set) lazy var scheduler = makeScheduler()

    /// Runs one request to completion in this thread (the one-shot CLI, `bench`, tests), through
    /// the same scheduler path as the daemon's requests.
    public func generate(_ prompt: PromptInput, config: SessionConfig,
                         onUpdate: (SessionUpdate) -> Void = { _ in }) throws -> Generation {
        try scheduler.generate(prompt: try self.prompt(prompt), config: config, onUpdate: onUpdate)
    }

    public func generate(prompt: Prompt, config: SessionConfig,
                         onUpdate: (SessionUpdate) -> Void = { _ in }) throws -> Generation {
        try scheduler.generate(prompt: prompt, config: config, onUpdate: onUpdate)
    }

    /// A prompt in the target's tokens, and in the draft's own when their vocabularies differ.
    public func prompt(_ input: PromptInput) throws -> Prompt {
        try Engines.prompt(input, target: targetModel, draft: sharesVocabulary ? nil : draftModel)
    }

    /// `draft`: the draft model when it reads its own tokens (another vocabulary), else nil.
    public static func prompt(_ input: PromptInput, target: Model, draft: Model?) throws -> Prompt {
        Prompt(try promptTokens(input, model: target), draft: try draft.map { try promptTokens(input, model: $0) })
    }

    /// Tokens of a prompt, formatted with `model`'s chat template: a text is one user turn, or raw
    /// text for a base model without a template, which cannot take a conversation. Reads only the
    /// vocabulary and the template: safe from any thread.
    public static func promptTokens(_ input: PromptInput, model: Model) throws -> [Token] {
        switch input {
        case .text(let text) where model.chatTemplate == nil, .raw(let text):
            return try model.vocab.tokenize(text, addSpecial: true, parseSpecial: false)
        case .text(let text):
            return try promptTokens(.chat([ChatMessage(role: "user", content: text)]), model: model)
        case .chat(let messages):
            let formatted = try model.applyChatTemplate(messages)
            return try model.vocab.tokenize(formatted, addSpecial: true, parseSpecial: true)
        }
    }
}

/// What a request asks about: one text, or a conversation ending with the user's turn.
public enum PromptInput: Sendable, Equatable {
    case text(String)
    case chat([ChatMessage])
    /// A text the model continues as it is, without the chat template (`/v1/completions`).
    case raw(String)

    /// Bytes of text it carries.
    public var textBytes: Int {
        switch self {
        case .text(let text), .raw(let text): return text.utf8.count
        case .chat(let messages): return messages.reduce(0) { $0 + $1.content.utf8.count }
        }
    }
}

/// The models a split can place on other hosts (the verifiers' models are small and stay local).
public enum ModelRole: String, Sendable, CaseIterable, Hashable {
    case target, draft

    /// `rpc_models` / `--rpc-models`: at least one role, by name.
    public static func set(_ items: [String]) throws(EngineError) -> Set<ModelRole> {
        var roles: Set<ModelRole> = []
        for name in items {
            guard let role = ModelRole(rawValue: name) else { throw .badConfig(key: "rpc_models", reason: "'\(name)' is not target or draft") }
            roles.insert(role)
        }
        guard !roles.isEmpty else { throw .badConfig(key: "rpc_models", reason: "name target, draft or both") }
        return roles
    }
}

extension EngineConfig {
    /// `tensor_split` / `--tensor-split`: non-negative shares, at least one above 0; nil for none.
    public static func shares(_ items: [String]) throws(EngineError) -> [Float]? {
        var shares: [Float] = []
        for text in items {
            guard let x = Float(text), x >= 0, x.isFinite else {
                throw .badConfig(key: "tensor_split", reason: "'\(text)' is not a non-negative number")
            }
            shares.append(x)
        }
        guard shares.isEmpty || shares.contains(where: { $0 > 0 }) else {
            throw .badConfig(key: "tensor_split", reason: "at least one share must be above 0")
        }
        return shares.isEmpty ? nil : shares
    }
}

/// An `rpc-server` to lend its devices: "host:port". ggml's RPC protocol has no authentication and
/// no encryption, so a host other than this one's loopback is taken only on a trusted network.
public struct RPCEndpoint: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public let host: String
    public let port: UInt16

    /// `text` checked; the reason for refusing it otherwise.
    public init(_ text: String, trustedNetwork: Bool) throws(EngineError) {
        func bad(_ reason: String) -> EngineError { .badConfig(key: "rpc_servers", reason: "'\(text)': \(reason)") }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
            throw bad("not host:port (as 192.168.1.20:50052)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else { throw bad("no host before the port") }
        guard trustedNetwork || Self.isLoopback(host) else {
            throw bad("""
                not this host's loopback; ggml's RPC has no authentication or encryption, so anyone who reaches \
                the server can use it and read or change the tensors it holds: set rpc_trusted_network = true \
                (--rpc-trusted-network) \
                for a private network or a tunnel
                """)
        }
        self.text = text
        self.host = host
        self.port = port
    }

    /// `rpc_servers` / `--rpc`: each endpoint checked, and listed once.
    public static func list(_ items: [String], trustedNetwork: Bool) throws(EngineError) -> [RPCEndpoint] {
        var servers: [RPCEndpoint] = []
        for text in items {
            let server = try RPCEndpoint(text, trustedNetwork: trustedNetwork)
            guard !servers.contains(server) else { throw .badConfig(key: "rpc_servers", reason: "\(server) is listed twice") }
            servers.append(server)
        }
        return servers
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.") && host.split(separator: ".").count == 4
    }

    public var description: String { text }
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case badConfig(key: String, reason: String)
    /// The key and the reason apart, for a caller that names the setting its own way (the config
    /// parser's line, a command-line flag).
    public var key: String {
        switch self { case .badConfig(let k, _): return k }
    }
    public var reason: String {
        switch self { case .badConfig(_, let r): return r }
    }
    public var description: String {
        switch self { case .badConfig(let k, let r): return "config key '\(k)': \(r)" }
    }
}
