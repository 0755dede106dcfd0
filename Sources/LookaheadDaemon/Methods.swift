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
    private let counters = Mutex<[RequestOutcome: Int]>([:])

    public init(config: DaemonConfiguration, models: JSONValue, batcher: Batcher, jobs: JobRunner, asks: AskPreparer,
                connections: ConnectionGate? = nil) {
        self.config = config
        let target = models.objectValue?["models"]?.arrayValue?.first?.objectValue?["name"]?.stringValue
        modelID = Methods.servedID(target ?? "lookaheadd")
        self.models = models
        self.batcher = batcher
        self.jobs = jobs
        self.asks = asks
        self.connections = connections ?? ConnectionGate(limits: config.connectionLimits)
        backend = config.gpuLayers != 0 ? "gpu" : "cpu"
    }

    /// The name a model is served under: its GGUF `general.name`, else llama.cpp's summary. The
    /// one derivation of it: `models` lists it, and `servedID` makes the OpenAI id of it.
    public static func modelName(_ m: Model) -> String { m.metadata("general.name") ?? m.summary }

    /// The id OpenAI clients name a model by (`/v1/models`, `model` in answers): its name with
    /// blanks as dashes, as model ids are written.
    public static func servedID(_ name: String) -> String { String(name.map { $0.isWhitespace ? "-" : $0 }) }

    /// `models`' answer: every loaded model and the configured verifier.
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
                "chat_template": .bool(m.chatTemplate != nil),
            ])
        }
        var list = [entry("target", engines.targetModel)]
        if let d = engines.draftModel { list.append(entry("draft", d)) }
        if let e = engines.embedModel { list.append(entry("embedding", e)) }
        return .object(["models": .array(list), "verifier": .string(engines.config.verifier.kind.rawValue)])
    }

    // MARK: status, version, metrics

    public func status() -> JSONValue {
        let s = batcher.status, t = s.totals
        let tps = t.busySeconds > 0 ? Double(t.generatedTokens) / t.busySeconds : 0
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
            "passes": .object(["ticks": JSONValue(t.ticks), "target": JSONValue(t.targetPasses),
                               "target_shared": JSONValue(t.sharedTargetPasses),
                               "max_sessions_per_target_pass": JSONValue(t.maxSessionsInTargetPass),
                               "target_tokens": JSONValue(t.targetPassTokens), "draft": JSONValue(t.draftPasses)]),
            "requests": .object(["finished": JSONValue(t.finished), "cancelled": JSONValue(t.cancelled),
                                 "failed": JSONValue(t.failed)]),
            "connections": .object(["open": JSONValue(connections.open), "max": JSONValue(config.maxConnections)]),
            "tokens_per_second": .double(tps),
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
    /// (any other name is `other`): a client's string must not become a label, or one line per
    /// name it invents.
    func count(method: String, outcome: String) {
        let name = Method(rawValue: method)?.rawValue ?? "other"
        counters.withLock { $0[RequestOutcome(method: name, outcome: outcome), default: 0] += 1 }
    }

    /// Prometheus text exposition, format 0.0.4.
    public func metrics() -> String {
        let s = batcher.status, t = s.totals
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP lookaheadd_\(name) \(help)\n# TYPE lookaheadd_\(name) \(type)\n"
            for (labels, v) in samples {
                let value = v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
                out += "lookaheadd_\(name)\(labels) \(value)\n"
            }
        }
        metric("requests_total", "counter", "Requests finished, by method and outcome.",
               counters.withLock { $0 }.sorted { $0.key < $1.key }.map {
                   ("{method=\"\(prometheusLabel($0.key.method))\",outcome=\"\(prometheusLabel($0.key.outcome))\"}", Double($0.value))
               })
        metric("generated_tokens_total", "counter", "Tokens generated.", [("", Double(t.generatedTokens))])
        metric("draft_steps_total", "counter", "Draft steps judged at the commit point, by verdict.",
               [("{verdict=\"accepted\"}", Double(t.acceptedSteps)), ("{verdict=\"rejected\"}", Double(t.rejectedSteps))])
        let judged = t.acceptedSteps + t.rejectedSteps
        metric("step_acceptance_ratio", "gauge", "Accepted share of judged draft steps (alpha), since start.",
               [("", judged == 0 ? 0 : Double(t.acceptedSteps) / Double(judged))])
        metric("sessions", "gauge", "Sessions in the batcher, by state.",
               [("{state=\"active\"}", Double(s.activeSessions)), ("{state=\"queued\"}", Double(s.queuedInteractive + s.queuedBatch))])
        metric("target_passes_total", "counter", "Target passes, and those that carried more than one session.",
               [("{shared=\"false\"}", Double(t.targetPasses - t.sharedTargetPasses)), ("{shared=\"true\"}", Double(t.sharedTargetPasses))])
        metric("draft_passes_total", "counter", "Draft passes.", [("", Double(t.draftPasses))])
        metric("engine_busy_seconds_total", "counter", "Seconds the engine thread spent in ticks.", [("", t.busySeconds)])
        metric("kv_cells", "gauge", "KV cells reserved by admitted sessions, and the total.",
               [("{state=\"reserved\"}", Double(s.kvCellsReserved)), ("{state=\"total\"}", Double(s.kvCellsTotal))])
        metric("uptime_seconds", "gauge", "Seconds since start.", [("", monotonicSeconds() - started)])
        return out
    }
}

/// A label value as the text exposition format writes it: backslash, double quote and line feed
/// escaped, so no value can end its label or its line.
func prometheusLabel(_ value: String) -> String {
    var out = ""
    for c in value.unicodeScalars {
        switch c {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// A line of `requests_total`: a method and how it ended.
struct RequestOutcome: Hashable, Comparable {
    var method: String
    var outcome: String
    static func < (a: RequestOutcome, b: RequestOutcome) -> Bool { (a.method, a.outcome) < (b.method, b.outcome) }
}
