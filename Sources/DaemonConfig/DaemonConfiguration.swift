import Lookahead
import StepBatcher

/// Everything `/etc/lookaheadd/lookaheadd.conf` can set. The defaults here are the documented ones:
/// etc/lookaheadd.conf lists each of them, and a test holds the two together.
/// An empty path means "not configured": the executable (socket, state) or `engineConfig()` (models)
/// fills it from the environment at start, so a parsed file does not depend on who parsed it.
public struct DaemonConfiguration: Sendable, Equatable {
    public enum Verifier: String, Sendable, CaseIterable {
        case exact, embedding, judge
    }

    public enum JudgeModel: Sendable, Equatable {
        case draft, target
        case path(String)
    }

    public enum LogLevel: String, Sendable, CaseIterable {
        case debug, info, notice, warning, error
    }

    // Listener and state
    public var socket = ""
    public var socketMode: UInt32 = 0o660
    public var stateDirectory = ""

    // Models
    public var modelDirectory = ""
    /// Relative paths are relative to the model directory.
    public var targetModel = ""
    public var draftModel = ""
    public var embedModel = ""

    // Verifier
    public var verifier: Verifier = .embedding
    public var judgeModel: JudgeModel = .draft
    public var embeddingThreshold: Float = 0.95
    public var numericGuard = true

    // Engine
    public var threads = 2
    public var gpuLayers: Int32 = 0
    public var contextLength = 8192
    public var batchSize = 512
    public var batchInvariant = false

    // Admission
    /// Interactive and batch sessions the batcher runs at once.
    public var maxSessions = 4
    /// Of those, how many may be batch work, so interactive asks always find room.
    public var maxBatchSessions = 2

    // Request defaults and limits
    public var defaultMode: Mode = .lookaheadSD
    public var defaultGamma = 4
    public var defaultWidth = 1
    public var defaultMaxTokens = 512
    public var maxTokensLimit = 4096
    public var draftTokensPerTick = 2
    public var proposalTokens = 4
    public var stepTokens = 100
    public var stepDelimiter = "\n\n"

    // Protocol
    public var maxFrameBytes = 8 << 20
    public var maxPromptTokens = 6144

    // Batch drain and shutdown
    /// nil: batch jobs run whenever interactive work leaves room.
    public var drainWindow: DrainWindow?
    /// Largest batch input `jobs.submit` takes, in bytes (its `content`, or the file at its `path`).
    public var maxJobBytes = 64 << 20
    public var shutdownGraceSeconds = 20.0

    public var logLevel: LogLevel = .info

    public init() {}

    /// Paths resolved against the model directory; the context gets enough sequence ids for
    /// `maxSessions` sessions at the default depth and width (llama.cpp allows at most 256).
    public func engineConfig() -> EngineConfig {
        let directory = modelDirectory.isEmpty ? EngineConfig.defaultModelDirectory : modelDirectory
        var config = EngineConfig(modelDirectory: directory)
        if !targetModel.isEmpty { config.targetPath = Self.resolve(targetModel, in: directory) }
        if !draftModel.isEmpty { config.draftPath = Self.resolve(draftModel, in: directory) }
        if !embedModel.isEmpty { config.embedPath = Self.resolve(embedModel, in: directory) }
        config.verifier = verifier.rawValue
        switch judgeModel {
        case .draft: config.judgeModel = "draft"
        case .target: config.judgeModel = "target"
        case .path(let path): config.judgeModel = Self.resolve(path, in: directory)
        }
        config.embeddingThreshold = embeddingThreshold
        config.numericGuard = numericGuard
        config.threads = threads
        config.gpuLayers = gpuLayers
        config.contextLength = contextLength
        config.batchSize = batchSize
        config.batchInvariant = batchInvariant
        config.sequences = min(256, maxSessions * (1 + defaultGamma * defaultWidth))
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
        config.rules.maxTokens = stepTokens
        config.rules.delimiter = stepDelimiter
        return config
    }

    static func resolve(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : directory + "/" + path
    }
}
