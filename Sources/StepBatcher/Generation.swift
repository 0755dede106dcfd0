import Llama
import Lookahead

/// The outcome of one request.
public struct Generation: Sendable {
    public var text: String
    public var tokens: [Token]
    public var steps: [Step]
    public var finishReason: FinishReason
    public var stats: SessionStats

    /// The text after `</think>`, or else the last non-empty line.
    public var answer: String { Generation.answer(of: text) }

    public static func answer(of text: String, thinkEnd: String = "</think>") -> String {
        let marker = Array(thinkEnd.utf8), bytes = Array(text.utf8)
        if !marker.isEmpty, bytes.count >= marker.count {
            for start in stride(from: bytes.count - marker.count, through: 0, by: -1)
            where bytes[start..<start + marker.count].elementsEqual(marker) {
                return String(decoding: bytes[(start + marker.count)...], as: UTF8.self).trimmingWhitespace
            }
        }
        let lines = text.split(whereSeparator: \.isNewline).map { String($0).trimmingWhitespace }
        return lines.last(where: { !$0.isEmpty }) ?? ""
    }
}

extension Engines {
    /// Runs one request to completion in this thread (the one-shot CLI and the tests); the daemon
    /// drives the same sessions through its own tick loop.
    public func generate(prompt: [Token], config: SessionConfig,
                         onEvent: (SessionEvent) -> Void = { _ in }) throws -> Generation {
        let session = try LookaheadSession(
            prompt: prompt, config: config, target: target, draft: draft,
            targetSeqs: (0..<Int32(config.targetSequences)).map { $0 },
            draftSeqs: (0..<Int32(config.draftSequences)).map { $0 })
        runner.add(session)
        let t0 = monotonicSeconds()
        defer { session.cancel(); runner.reap() }
        while !session.isFinished {
            try runner.tick()
            governThreads()
            session.takeEvents().forEach(onEvent)
        }
        session.takeEvents().forEach(onEvent)
        var stats = session.stats
        stats.wallSeconds = monotonicSeconds() - t0
        stats.generatedTokens = session.generatedTokens.count
        return Generation(text: target.text.detokenize(session.generatedTokens), tokens: session.generatedTokens,
                          steps: session.steps, finishReason: session.finishReason ?? .stop, stats: stats)
    }

    public func generate(_ prompt: String, config: SessionConfig,
                         onEvent: (SessionEvent) -> Void = { _ in }) throws -> Generation {
        try generate(prompt: try promptTokens(prompt), config: config, onEvent: onEvent)
    }
}
