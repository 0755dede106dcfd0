import DaemonConfig
import Llama
import Lookahead
import LookaheadProtocol
import StepBatcher
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public let daemonVersion = "0.1.0"
public let protocolVersion = 1

/// What the methods answer from: the batcher, the job runner, the loaded models and the
/// configuration. Shared by every connection; everything it holds is immutable or thread-safe.
public final class Methods: Sendable {
    public let config: DaemonConfiguration
    public let batcher: Batcher
    public let jobs: JobRunner
    public let asks: AskPreparer
    /// Every connection of both surfaces passes through it, so `status` can count them.
    let connections: ConnectionGate
    /// The name `/v1/models` lists and OpenAI requests may give as `model`: the target's.
    public let modelID: String
    let models: JSONValue
    let started = monotonicSeconds()
    let backend: String
    let metrics: DaemonMetrics

    /// `modelID`: `servedID(modelName(target))`. `metrics`: the registry the batcher's
    /// `RequestMetrics` record into, so one scrape shows both.
    public init(config: DaemonConfiguration, models: JSONValue, modelID: String = "lookaheadd", batcher: Batcher, jobs: JobRunner,
                asks: AskPreparer, connections: ConnectionGate? = nil, metrics: DaemonMetrics = DaemonMetrics()) {
        self.metrics = metrics
        self.config = config
        self.modelID = modelID
        self.models = models
        self.batcher = batcher
        self.jobs = jobs
        self.asks = asks
        self.connections = connections ?? ConnectionGate(limits: config.connectionLimits)
        backend = config.gpuLayers != 0 && LlamaBackend.gpu != nil ? "gpu" : "cpu"
    }

    /// The name a model is served under: its GGUF `general.name`, else llama.cpp's summary. The
    /// one derivation of it: `models` lists it, and `servedID` makes the OpenAI id of it.
    public static func modelName(_ m: Model) -> String { m.metadata("general.name") ?? m.summary }

    /// The id OpenAI clients name a model by (`/v1/models`, `model` in answers): its name with
    /// blanks as dashes, as model ids are written.
    public static func servedID(_ name: String) -> String { String(name.map { $0.isWhitespace ? "-" : $0 }) }

    /// `models`' answer: every loaded model, the configured verifier, and with a draft, how steps
    /// cross between it and the target: `shared` (one vocabulary, token ids) or `own` (text).
    public static func describe(_ engines: Engines) -> JSONValue {
        func entry(_ role: String, _ m: Model) -> JSONValue {
            var size: Int64 = 0
            var st = stat()
            if stat(m.path, &st) == 0 { size = Int64(st.st_size) }
            return .object([
                "role": .string(role), "name": .string(modelName(m)),
                "description": .string(m.summary), "path": .string(m.path), "bytes": .int(size),
                "arch": .string(m.metadata("general.architecture") ?? "unknown"),
                "parameters": .int(Int64(m.parameterCount)), "context_length": .int(Int64(m.trainedContext)),
                "chat_template": .bool(m.chatTemplate != nil), "device": .string(m.device),
                "layers": .int(Int64(m.layerCount)), "offloaded_layers": .int(Int64(m.offloadedLayers)),
                "devices": .array(m.devices.map { .string($0.description) }),
            ])
        }
        var list = [entry("target", engines.targetModel)]
        if let d = engines.draftModel { list.append(entry("draft", d)) }
        if let e = engines.embedModel { list.append(entry("embedding", e)) }
        var answer: JSONObject = ["models": .array(list), "verifier": .string(engines.config.verifier.kind.rawValue)]
        if engines.draftModel != nil { answer["draft_vocabulary"] = .string(engines.sharesVocabulary ? "shared" : "own") }
        return .object(answer)
    }

    // MARK: status, version, metrics

    public func status() -> JSONValue {
        let s = batcher.status, t = s.totals
        let batch = jobs.statusFields()
        return .object([
            "state": .string(s.stopping ? "stopping" : "ready"),
            "version": .string(daemonVersion),
            "uptime_seconds": .double(monotonicSeconds() - started),
            "sessions": .object(["active": JSONValue(s.activeSessions), "batch": JSONValue(s.activeBatchSessions),
                                 "queued": JSONValue(s.queuedInteractive + s.queuedBatch),
                                 "max": JSONValue(config.maxSessions)]),
            "sequences": .object(["used": JSONValue(s.targetSequencesUsed), "total": JSONValue(s.targetSequencesTotal),
                                  "draft_used": JSONValue(s.draftSequencesUsed)]),
            "kv_cells": .object(["reserved": JSONValue(s.kvCellsReserved), "total": JSONValue(s.kvCellsTotal)]),
            "prefix_cache": .object([
                "enabled": .bool(s.prefixCache.enabled), "lookups": JSONValue(t.prefixLookups), "hits": JSONValue(t.prefixHits),
                "queried_tokens": JSONValue(t.prefixQueriedTokens), "cached_tokens": JSONValue(t.cachedPromptTokens),
                "sequences": JSONValue(s.prefixCache.targetSequences), "cells": JSONValue(s.prefixCache.targetCells),
                "draft_sequences": JSONValue(s.prefixCache.draftSequences), "draft_cells": JSONValue(s.prefixCache.draftCells),
            ]),
            "passes": .object(["ticks": JSONValue(t.ticks), "target": JSONValue(t.targetPasses),
                               "target_shared": JSONValue(t.sharedTargetPasses),
                               "max_sessions_per_target_pass": JSONValue(t.maxSessionsInTargetPass),
                               "target_tokens": JSONValue(t.targetPassTokens), "draft": JSONValue(t.draftPasses)]),
            "requests": .object(["finished": JSONValue(t.finished), "cancelled": JSONValue(t.cancelled),
                                 "failed": JSONValue(t.failed)]),
            "connections": .object(["open": JSONValue(connections.open), "max": JSONValue(config.maxConnections)]),
            "tokens_per_second": .double(t.tokensPerBusySecond),
            "draft_vocabulary": models.objectValue?["draft_vocabulary"] ?? .null,
            // Where each model's layers are, from `models`' answer.
            "models": .array((models.objectValue?["models"]?.arrayValue ?? []).compactMap(\.objectValue).map { model in
                var place = JSONObject()
                for key in ["role", "device", "layers", "offloaded_layers"] { place[key] = model[key] }
                return .object(place)
            }),
            "rpc_servers": .array(config.rpcServers.map { server in
                .object(["endpoint": .string(server.text), "lost": .bool(RemoteDevices.hasFailed(server.text))])
            }),
            "engine_threads": .object(["now": JSONValue(s.engineThreads), "max": JSONValue(config.threads),
                                       "changes": JSONValue(s.threadChanges)]),
            "jobs": batch.jobs, "drain_window": batch.drainWindow,
        ])
    }

    public func version() -> JSONValue {
        .object(["version": .string(daemonVersion), "protocol": JSONValue(protocolVersion),
                 "llama_cpp": .string("0c1e57098"), "backend": .string(backend)])
    }

    /// Counts a request's end. Methods are counted by name only when the protocol defines them
    /// (any other name is `other`): a client's string must not become a label.
    func count(method: String, outcome: String) {
        metrics.count(method: Method(rawValue: method)?.rawValue ?? "other", outcome: outcome)
    }

    /// Prometheus text exposition, format 0.0.4.
    public func metricsText() -> String {
        metrics.render(batcher.status, connections: connections.open, uptime: monotonicSeconds() - started)
    }
}
