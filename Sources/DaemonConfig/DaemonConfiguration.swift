import Lookahead
import StepBatcher

/// Everything `/etc/lookaheadd/lookaheadd.conf` can set. Engine and request defaults are taken from
/// `EngineConfig` and `SessionConfig`, where they live; etc/lookaheadd.conf lists each of them,
/// and a test holds the two together.
/// An empty path means "not configured": the executable (socket, state) or `engineConfig()` (models)
/// fills it from the environment at start, so a parsed file does not depend on who parsed it.
public struct DaemonConfiguration: Sendable, Equatable {
    public enum LogLevel: String, Sendable, CaseIterable {
        case debug, info, notice, warning, error
    }

    // Listener and state
    public var socket = ""
    public var socketMode: UInt32 = 0o660
    public var stateDirectory = ""
    /// The OpenAI-compatible HTTP listeners; none by default.
    public var httpListen: [HTTPEndpoint] = []
    /// A file whose first line is the bearer token HTTP requests must carry; empty: none needed
    /// (allowed only while every listener is loopback).
    public var apiKeyFile = ""

    // Models
    public var modelDirectory = ""
    /// Relative paths are relative to the model directory.
    public var targetModel = ""
    public var draftModel = ""
    public var embedModel = ""

    // Verifier: `verifierSpec` puts the three together.
    public var verifier = VerifierSpec.default.kind
    public var judgeModel = VerifierSpec.defaultJudge
    public var embeddingThreshold = VerifierSpec.defaultThreshold
    public var numericGuard = Self.engine.numericGuard

    // Engine
    public var threads = Self.engine.threads
    public var gpuLayers = Self.engine.gpuLayers
    /// Checked as host:port here; a host other than loopback needs `rpcTrustedNetwork`.
    public var rpcServers = Self.engine.rpcServers
    public var rpcTrustedNetwork = false
    public var rpcModels = Self.engine.rpcModels
    public var tensorSplit = Self.engine.tensorSplit
    public var contextLength = Self.engine.contextLength
    public var batchSize = Self.engine.batchSize
    public var batchInvariant = Self.engine.batchInvariant

    // Admission
    /// Interactive and batch sessions the batcher runs at once.
    public var maxSessions = BatcherLimits().maxSessions
    /// Of those, how many may be batch work, so interactive asks always find room.
    public var maxBatchSessions = BatcherLimits().maxBatchSessions
    /// Finished requests leave their KV cells for later prompts that share a prefix.
    public var prefixCache = true
    /// The most cells the prefix cache keeps per model; nil: whatever live sessions leave free.
    public var prefixCacheMaxCells: Int?

    // Request defaults and limits
    public var defaultMode = Self.session.mode
    public var defaultGamma = Self.session.gamma
    public var defaultWidth = Self.session.width
    public var defaultMaxTokens = Self.session.maxTokens
    public var maxTokensLimit = 4096
    public var draftTokensPerTick = Self.session.draftTokensPerTick
    public var proposalTokens = Self.session.proposalTokens
    public var prefillChunkTokens = Self.session.prefillChunk
    public var stepTokens = Self.session.rules.maxTokens
    public var stepDelimiter = Self.session.rules.delimiter

    // Protocol and connections
    public var maxFrameBytes = Self.connection.maxFrameBytes
    public var maxPromptTokens = 6144
    public var maxConnections = Self.connection.maxConnections
    public var maxConnectionsPerUser = Self.connection.maxConnectionsPerUser
    public var maxInflightPerConnection = Self.connection.maxInflightPerConnection
    /// Interactive asks waiting for a session.
    public var maxQueuedSessions = BatcherLimits().maxQueued
    public var maxUnsentBytes = Self.connection.maxUnsentBytes
    public var stalledReaderSeconds = Self.connection.stalledReaderSeconds
    public var frameTimeoutSeconds = Self.connection.frameTimeoutSeconds
    public var idleTimeoutSeconds = Self.connection.idleTimeoutSeconds

    // Batch drain and shutdown
    /// nil: batch jobs run whenever interactive work leaves room.
    public var drainWindow: DrainWindow?
    /// Largest batch input `jobs.submit` takes, in bytes (its `content`, or the file at its `path`).
    public var maxJobBytes = 64 << 20
    /// What one uid may have unfinished (queued or running): jobs, their lines, and the bytes
    /// they take in the store. Beyond them a submission is refused (docs/protocol.md).
    public var maxJobsPerUser = 64
    public var maxJobLinesPerUser = 100_000
    public var maxJobBytesPerUser = 256 << 20
    /// Days a finished job and its results are kept before the daemon deletes them; 0: forever.
    public var jobRetentionDays = 7
    public var shutdownGraceSeconds = 20.0

    public var logLevel: LogLevel = .info

    public init() {}

    private static let engine = EngineConfig(modelDirectory: "")
    private static let session = SessionConfig()
    private static let connection = ConnectionLimits()

    /// The configured verifier with its settings.
    public var verifierSpec: VerifierSpec {
        switch verifier {
        case .exact: return .exact
        case .normalized: return .normalized
        case .embedding: return .embedding(threshold: embeddingThreshold)
        case .judge:
            let model: JudgeModel
            if case .path(let path) = judgeModel {
                model = .path(Self.resolve(path, in: resolvedModelDirectory))
            } else {
                model = judgeModel
            }
            return .judge(model: model, margin: VerifierSpec.defaultMargin)
        case .random: return .random(acceptance: 0.5)
        }
    }

    /// The scheduler's prefix cache size, nil when it is off.
    public var prefixCacheCells: Int? {
        prefixCache ? min(prefixCacheMaxCells ?? contextLength, contextLength) : nil
    }

    public var limits: BatcherLimits {
        BatcherLimits(maxSessions: maxSessions, maxBatchSessions: maxBatchSessions, maxQueued: maxQueuedSessions)
    }

    public var connectionLimits: ConnectionLimits {
        var c = ConnectionLimits()
        c.maxFrameBytes = maxFrameBytes
        c.maxConnections = maxConnections
        c.maxConnectionsPerUser = maxConnectionsPerUser
        c.maxInflightPerConnection = maxInflightPerConnection
        c.maxUnsentBytes = maxUnsentBytes
        c.stalledReaderSeconds = stalledReaderSeconds
        c.frameTimeoutSeconds = frameTimeoutSeconds
        c.idleTimeoutSeconds = idleTimeoutSeconds
        return c
    }

    private var resolvedModelDirectory: String {
        modelDirectory.isEmpty ? EngineConfig.defaultModelDirectory : modelDirectory
    }

    /// Paths resolved against the model directory; the context gets enough sequence ids for
    /// `maxSessions` sessions at the default depth and width, as many as llama.cpp allows.
    public func engineConfig() -> EngineConfig {
        let directory = resolvedModelDirectory
        var config = EngineConfig(modelDirectory: directory)
        if !targetModel.isEmpty { config.targetPath = Self.resolve(targetModel, in: directory) }
        if !draftModel.isEmpty { config.draftPath = Self.resolve(draftModel, in: directory) }
        if !embedModel.isEmpty { config.embedPath = Self.resolve(embedModel, in: directory) }
        config.verifier = verifierSpec
        config.numericGuard = numericGuard
        config.threads = threads
        config.gpuLayers = gpuLayers
        config.rpcServers = rpcServers
        config.rpcModels = rpcModels
        config.tensorSplit = tensorSplit
        config.contextLength = contextLength
        config.batchSize = batchSize
        config.batchInvariant = batchInvariant
        config.sequences = min(config.maxSequences, maxSessions * (1 + defaultGamma * defaultWidth))
        return config
    }

    /// What a request gets for every setting it does not give itself.
    public func sessionDefaults() -> SessionConfig {
        var config = SessionConfig(mode: defaultMode)
        config.gamma = defaultGamma
        config.width = defaultWidth
        config.maxTokens = defaultMaxTokens
        config.draftTokensPerTick = draftTokensPerTick
        config.proposalTokens = proposalTokens
        config.prefillChunk = prefillChunkTokens
        config.rules.maxTokens = stepTokens
        config.rules.delimiter = stepDelimiter
        return config
    }

    static func resolve(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : directory + "/" + path
    }
}
