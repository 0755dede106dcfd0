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
    @Option(name: .customLong("gpu-layers"),
            help: "Layers offloaded to the GPU (a CUDA build of llama.cpp) or, with --rpc, the target's layers that leave this CPU; -1 all, 0 none.")
    var gpuLayers: Int32 = EngineConfig().gpuLayers
    @Option(name: .customLong("rpc"),
            help: "rpc-server endpoints (host:port, comma-separated) lending their devices to the target; --gpu-layers of its layers leave this CPU.")
    var rpc: String?
    @Flag(name: .customLong("rpc-trusted-network"),
          help: "Allow rpc-servers beyond loopback (ggml's RPC has no authentication or encryption).")
    var rpcTrustedNetwork = false
    @Option(name: .customLong("rpc-models"), help: "The models --rpc takes: target (the default), draft, or target,draft.")
    var rpcModels: String?
    @Option(name: .customLong("tensor-split"), help: "The target's shares of offloaded layers per device (--rpc's, then the local GPUs), as 3,1.")
    var tensorSplit: String?

    var given: Bool {
        directory != nil || target != nil || draft != nil || rpc != nil || rpcModels != nil || tensorSplit != nil
            || gpuLayers != EngineConfig().gpuLayers
    }
    var resolvedDirectory: String { directory ?? EngineConfig.defaultModelDirectory }

    func validate() throws { _ = try engineConfig() }

    func engineConfig() throws -> EngineConfig {
        var c = EngineConfig(modelDirectory: resolvedDirectory)
        if let target { c.targetPath = target }
        if let draft { c.draftPath = draft }
        guard gpuLayers >= -1 else { throw ValidationError("--gpu-layers must be -1 (all) or more") }
        c.gpuLayers = gpuLayers
        // The config file's parsers, so a flag and its key refuse the same values the same way.
        func items(_ text: String) -> [String] { text.split(separator: ",").map(String.init) }
        do throws(EngineError) {
            c.rpcServers = try RPCEndpoint.list(items(rpc ?? ""), trustedNetwork: rpcTrustedNetwork)
            if let rpcModels { c.rpcModels = try ModelRole.set(items(rpcModels)) }
            if let tensorSplit { c.tensorSplit = try EngineConfig.shares(items(tensorSplit)) }
        } catch {
            let flags = ["rpc_servers": "--rpc", "rpc_models": "--rpc-models", "tensor_split": "--tensor-split"]
            throw ValidationError("\(flags[error.key] ?? error.key) \(error.reason)")
        }
        return c
    }

    /// What a progress line says is being loaded.
    var description: String {
        guard target != nil || draft != nil else { return resolvedDirectory }
        let defaults = EngineConfig(modelDirectory: resolvedDirectory)
        return "\(target ?? defaults.targetPath) (target), \(draft ?? defaults.draftPath) (draft)"
    }
}
