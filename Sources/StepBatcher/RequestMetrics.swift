import CoreMetrics
import Lookahead

/// What each request cost and gained, recorded through swift-metrics as it ends, whatever surface
/// it came from (socket `ask`, HTTP, batch line). The names follow vLLM's where the meaning is the
/// same (`spec_decode_*` count token-level speculation), with the step level of Lookahead Reasoning
/// beside them. The factory is given, not global, so every batcher (and test) has its own.
public struct RequestMetrics: Sendable {
    private let latency: CoreMetrics.Timer
    private let firstToken: CoreMetrics.Timer
    private let promptTokens: Counter
    private let generationTokens: Counter
    private let drafts: Counter
    private let draftTokens: Counter
    private let acceptedTokens: Counter
    private let stepsVerified: Counter
    private let stepsAccepted: Counter
    private let clock: @Sendable () -> Double

    public init(factory: any MetricsFactory, clock: @escaping @Sendable () -> Double = monotonicSeconds) {
        func counter(_ name: String) -> Counter { Counter(label: "lookaheadd_" + name, factory: factory) }
        latency = CoreMetrics.Timer(label: "lookaheadd_e2e_request_latency_seconds", preferredDisplayUnit: .seconds, factory: factory)
        firstToken = CoreMetrics.Timer(label: "lookaheadd_time_to_first_token_seconds", preferredDisplayUnit: .seconds, factory: factory)
        promptTokens = counter("prompt_tokens_total")
        generationTokens = counter("generation_tokens_total")
        drafts = counter("spec_decode_num_drafts_total")
        draftTokens = counter("spec_decode_num_draft_tokens_total")
        acceptedTokens = counter("spec_decode_num_accepted_tokens_total")
        stepsVerified = counter("lookahead_steps_verified_total")
        stepsAccepted = counter("lookahead_steps_accepted_total")
        self.clock = clock
    }

    /// The request with its sink wrapped: the first step times the first token, the end records
    /// the rest; a cancelled or failed request records its latency only.
    func observe(_ request: BatcherRequest) -> BatcherRequest {
        var observed = request
        let start = clock(), sink = request.sink, me = self, prompt = request.prompt.target.count
        // The sink runs on the engine thread only, one update at a time.
        nonisolated(unsafe) var first = true
        observed.sink = { update in
            switch update {
            case .started:
                break
            case .step:
                if first { me.firstToken.recordSeconds(me.clock() - start) }
                first = false
            case .finished(let g):
                if first { me.firstToken.recordSeconds(me.clock() - start) }
                me.record(g.stats, promptTokens: prompt, seconds: me.clock() - start)
            case .failed:
                me.latency.recordSeconds(me.clock() - start)
            }
            sink(update)
        }
        return observed
    }

    private func record(_ s: SessionStats, promptTokens prompt: Int, seconds: Double) {
        latency.recordSeconds(seconds)
        promptTokens.increment(by: prompt)
        generationTokens.increment(by: s.generatedTokens)
        drafts.increment(by: s.proposalRuns)
        draftTokens.increment(by: s.proposed.values.reduce(0, +))
        acceptedTokens.increment(by: s.acceptedProposals.values.reduce(0, +))
        stepsVerified.increment(by: s.acceptedDraftSteps + s.rejectedDraftSteps)
        stepsAccepted.increment(by: s.acceptedDraftSteps)
    }
}
