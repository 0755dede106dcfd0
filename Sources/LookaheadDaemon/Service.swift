import DaemonConfig
import Llama
import Lookahead
import LookaheadProtocol
import StepBatcher
#if canImport(Glibc)
import Glibc
#endif

public let daemonVersion = "0.1.0"
public let protocolVersion = 1

/// What the methods answer from: the batcher, the loaded models and the configuration. Shared by
/// every connection; everything it holds is either immutable or thread-safe (`Batcher`).
public final class Service: Sendable {
    public let config: DaemonConfiguration
    public let batcher: Batcher
    /// Batch jobs (JobRunner.swift); `startJobs()` sets them draining.
    public let jobs: JobRunner
    let models: JSONValue
    let defaults: SessionConfig
    let defaultVerifier: String
    let availableVerifiers: Set<String>
    let started = monotonicSeconds()
    let backend: String
    private let tokenizer: @Sendable (String) throws -> [Token]
    private let counters = Counters()

    public init(config: DaemonConfiguration, engines: Engines, batcher: Batcher, jobs: JobRunner) {
        self.config = config
        self.batcher = batcher
        self.jobs = jobs
        defaults = config.sessionDefaults()
        defaultVerifier = engines.config.verifier
        availableVerifiers = Set(engines.verifiers.keys)
        backend = engines.config.gpuLayers != 0 ? "gpu" : "cpu"
        models = Service.describe(engines)
        let box = UncheckedBox(engines)
        // Tokenising reads the vocabulary and the chat template only: safe from any thread.
        tokenizer = { try box.value.promptTokens($0) }
    }

    static func describe(_ engines: Engines) -> JSONValue {
        func entry(_ role: String, _ m: Model) -> JSONValue {
            var size: Int64 = 0
            var st = stat()
            if stat(m.path, &st) == 0 { size = Int64(st.st_size) }
            return .object([
                "role": .string(role), "name": .string(m.metadata("general.name") ?? m.summary),
                "description": .string(m.summary), "path": .string(m.path), "bytes": .int(size),
                "arch": .string(m.metadata("general.architecture") ?? "unknown"),
                "parameters": .int(Int64(m.parameterCount)), "context_length": .int(Int64(m.trainedContext)),
                "chat_template": .bool(m.chatTemplate != nil),
            ])
        }
        var list = [entry("target", engines.targetModel)]
        if let d = engines.draftModel { list.append(entry("draft", d)) }
        if let e = engines.embedModel { list.append(entry("embedding", e)) }
        return .object(["models": .array(list), "verifier": .string(engines.config.verifier)])
    }

    // MARK: ask

    static let askParams: Set<String> = ["prompt", "mode", "gamma", "width", "verifier", "temperature", "top_p",
                                         "top_k", "seed", "max_tokens", "adaptive"]

    /// The session settings an `ask` asks for, checked field by field.
    public func sessionConfig(_ params: Params) throws(ProtocolError) -> SessionConfig {
        try params.rejectUnknown(allowed: Service.askParams)
        var c = defaults
        if let mode: Mode = try params.optionalChoice("mode", as: Mode.self) { c.mode = mode }
        func ranged(_ key: String, _ range: ClosedRange<Int>) throws(ProtocolError) -> Int? {
            guard let v = try params.optionalInt(key) else { return nil }
            guard range.contains(v) else {
                throw ProtocolError(.invalidParams, "\(key) must be in \(range.lowerBound)...\(range.upperBound), got \(v)", field: key)
            }
            return v
        }
        if let g = try ranged("gamma", 0...16) { c.gamma = g }
        if let w = try ranged("width", 1...2) { c.width = w }
        if let m = try ranged("max_tokens", 1...config.maxTokensLimit) { c.maxTokens = m }
        if let a = try params.optionalBool("adaptive") { c.adaptive = a }
        if let v = try params.optionalString("verifier") {
            guard ["exact", "embedding", "judge"].contains(v) else {
                throw ProtocolError(.invalidParams, "verifier must be exact, embedding or judge, got '\(v)'", field: "verifier")
            }
            guard availableVerifiers.contains(v) else {
                throw ProtocolError(.invalidParams, "verifier '\(v)' is not loaded by this daemon (it has \(availableVerifiers.sorted().joined(separator: ", ")))", field: "verifier")
            }
            c.verifier = v
        }
        let temperature = try params.optionalDouble("temperature") ?? 0
        guard temperature >= 0, temperature <= 10 else {
            throw ProtocolError(.invalidParams, "temperature must be in 0...10, got \(temperature)", field: "temperature")
        }
        let topP = try params.optionalDouble("top_p") ?? 0.95
        guard topP > 0, topP <= 1 else { throw ProtocolError(.invalidParams, "top_p must be in (0, 1], got \(topP)", field: "top_p") }
        let topK = try ranged("top_k", 1...1000) ?? 20
        let seed = try ranged("seed", 0...Int.max) ?? 0
        c.sampling = temperature > 0
            ? SamplingParams(temperature: Float(temperature), topK: topK, topP: Float(topP), seed: UInt64(seed))
            : .greedy
        return c
    }

    public func promptTokens(_ params: Params) throws(ProtocolError) -> [Token] {
        let prompt = try params.string("prompt")
        guard !prompt.trimmingWhitespace.isEmpty else {
            throw ProtocolError(.invalidParams, "prompt must not be empty", field: "prompt")
        }
        let tokens: [Token]
        do { tokens = try tokenizer(prompt) } catch {
            throw ProtocolError(.invalidParams, "prompt could not be tokenised: \(error)", field: "prompt")
        }
        guard tokens.count <= config.maxPromptTokens else {
            throw ProtocolError(.tooLarge, "prompt is \(tokens.count) tokens; the limit is \(config.maxPromptTokens)", field: "prompt")
        }
        return tokens
    }

    public func verifierName(_ c: SessionConfig) -> String { c.verifier ?? defaultVerifier }

    // MARK: status, version, metrics

    public func status() -> JSONValue {
        let s = batcher.status
        let tps = s.busySeconds > 0 ? Double(s.generatedTokens) / s.busySeconds : 0
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
            "passes": .object(["ticks": JSONValue(s.ticks), "target": JSONValue(s.targetPasses),
                               "target_shared": JSONValue(s.sharedTargetPasses),
                               "max_sessions_per_target_pass": JSONValue(s.maxSessionsInTargetPass),
                               "target_tokens": JSONValue(s.targetPassTokens), "draft": JSONValue(s.draftPasses)]),
            "requests": .object(["finished": JSONValue(s.finished), "cancelled": JSONValue(s.cancelled),
                                 "failed": JSONValue(s.failed)]),
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

    func count(method: String, outcome: String) { counters.add(method: method, outcome: outcome) }

    /// Prometheus text exposition, format 0.0.4.
    public func metrics() -> String {
        let s = batcher.status
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP lookaheadd_\(name) \(help)\n# TYPE lookaheadd_\(name) \(type)\n"
            for (labels, v) in samples {
                let value = v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
                out += "lookaheadd_\(name)\(labels) \(value)\n"
            }
        }
        metric("requests_total", "counter", "Requests finished, by method and outcome.",
               counters.snapshot().map { ("{method=\"\($0.0)\",outcome=\"\($0.1)\"}", Double($0.2)) })
        metric("generated_tokens_total", "counter", "Tokens generated.", [("", Double(s.generatedTokens))])
        metric("draft_steps_total", "counter", "Draft steps judged at the commit point, by verdict.",
               [("{verdict=\"accepted\"}", Double(s.acceptedSteps)), ("{verdict=\"rejected\"}", Double(s.rejectedSteps))])
        let judged = s.acceptedSteps + s.rejectedSteps
        metric("step_acceptance_ratio", "gauge", "Accepted share of judged draft steps (alpha), since start.",
               [("", judged == 0 ? 0 : Double(s.acceptedSteps) / Double(judged))])
        metric("sessions", "gauge", "Sessions in the batcher, by state.",
               [("{state=\"active\"}", Double(s.activeSessions)), ("{state=\"queued\"}", Double(s.queuedInteractive + s.queuedBatch))])
        metric("target_passes_total", "counter", "Target passes, and those that carried more than one session.",
               [("{shared=\"false\"}", Double(s.targetPasses - s.sharedTargetPasses)), ("{shared=\"true\"}", Double(s.sharedTargetPasses))])
        metric("draft_passes_total", "counter", "Draft passes.", [("", Double(s.draftPasses))])
        metric("engine_busy_seconds_total", "counter", "Seconds the engine thread spent in ticks.", [("", s.busySeconds)])
        metric("kv_cells", "gauge", "KV cells reserved by admitted sessions, and the total.",
               [("{state=\"reserved\"}", Double(s.kvCellsReserved)), ("{state=\"total\"}", Double(s.kvCellsTotal))])
        metric("uptime_seconds", "gauge", "Seconds since start.", [("", monotonicSeconds() - started)])
        return out
    }
}

/// Request counts by method and outcome, for `metrics`.
final class Counters: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var counts: [String: Int] = [:]
    init() { pthread_mutex_init(&lock, nil) }
    func add(method: String, outcome: String) {
        pthread_mutex_lock(&lock)
        counts[method + "\u{0}" + outcome, default: 0] += 1
        pthread_mutex_unlock(&lock)
    }
    func snapshot() -> [(String, String, Int)] {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return counts.sorted { $0.key < $1.key }.map {
            let parts = $0.key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            return (String(parts[0]), String(parts[1]), $0.value)
        }
    }
}

/// Hands a value to another thread where the caller guarantees its use is safe.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
