import ArgumentParser
import StepBatcher

/// Which model files an in-process run loads (`ask --local`, `bench`): a directory of the
/// default names, and any model in it replaced by a file of the user's.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("models"),
            help: "Directory with target.gguf, draft.gguf, embed.gguf (default \(EngineConfig.defaultModelDirectory)).",
            completion: .directory)
    var directory: String?
    @Option(name: .customLong("target"), help: "The target model, instead of the directory's target.gguf.", completion: .file())
    var target: String?
    @Option(name: .customLong("draft"),
            help: "The draft model, instead of the directory's draft.gguf: any family (a draft with another vocabulary exchanges steps as text).",
            completion: .file())
    var draft: String?

    var given: Bool { directory != nil || target != nil || draft != nil }
    var resolvedDirectory: String { directory ?? EngineConfig.defaultModelDirectory }

    func engineConfig() -> EngineConfig {
        var c = EngineConfig(modelDirectory: resolvedDirectory)
        if let target { c.targetPath = target }
        if let draft { c.draftPath = draft }
        return c
    }

    /// What a progress line says is being loaded.
    var description: String {
        guard target != nil || draft != nil else { return resolvedDirectory }
        let c = engineConfig()
        return "\(c.targetPath) (target), \(c.draftPath) (draft)"
    }
}
