import Llama
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The cached models `make models` fetched. Loaded once per test process and shared: the suites
/// that use them run serialised (2 cores; parallel decoding would only thrash).
enum Models {
    static var directory: String {
        if let d = getenv("LOOKAHEAD_MODELS") { return String(cString: d) }
        let home = getenv("XDG_CACHE_HOME").map { String(cString: $0) } ?? String(cString: getenv("HOME")) + "/.cache"
        return home + "/lookaheadd/models"
    }
    static func path(_ name: String) -> String { directory + "/\(name).gguf" }

    /// Each model loads on first use. A missing file fails the tests that use it, naming the file
    /// (never a crash of the whole test process).
    static var draft: Model { get throws { try loadedDraft.get() } }
    static var target: Model { get throws { try loadedTarget.get() } }
    static var tiny: Model { get throws { try loadedTiny.get() } }
    static var embed: Model { get throws { try loadedEmbed.get() } }

    private static let loadedDraft = load("draft")
    private static let loadedTarget = load("target")
    private static let loadedTiny = load("tiny")
    private static let loadedEmbed = load("embed")

    private static func load(_ name: String) -> Result<Model, any Error> {
        Result {
            try requireModel(path(name))
            return try Model(path: path(name))
        }
    }

    static let threads = 2
}

/// Greedy continuation of each prompt, decoded alone in its own context.
func greedyAlone(_ model: Model, _ prompt: [Token], count: Int) throws -> [Token] {
    let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 1, threads: Models.threads))
    let batch = Batch(capacity: 256)
    for (i, t) in prompt.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == prompt.count - 1) }
    try ctx.decode(batch)
    var out: [Token] = []
    var last = batch.count - 1
    var position = Int32(prompt.count)
    for _ in 0..<count {
        let next = TokenDistribution(logits: try ctx.logits(at: last), params: .greedy).mostLikely
        out.append(next)
        batch.clear()
        last = try batch.add(next, position: position, sequence: 0, logits: true)
        position += 1
        try ctx.decode(batch)
    }
    return out
}

