import CLlama
#if canImport(Glibc)
import Glibc
#endif

/// A loaded GGUF model: weights plus vocabulary. Immutable once loaded, so several contexts
/// (a generator and a judge, say) can share it — and any thread may read it, hence unchecked.
public final class Model: @unchecked Sendable {
    let pointer: OpaquePointer
    public let path: String
    public let vocab: Vocab
    /// The devices its offloaded layers went to (empty: all on the CPU), and how many layers went.
    public let devices: [Device]
    public let offloadedLayers: Int

    /// Loads `path`, offloading `gpuLayers` layers (-1: all) where a GPU backend exists (ignored on CPU builds).
    /// Checks existence and the GGUF magic first, so the common mistakes get a precise error.
    /// `repack`: let the CPU backend repack weights into its interleaved layouts. Off by default:
    /// repacked weights send a batch's rows through other kernels than a single row, so a sequence
    /// decoded beside others stopped giving the same greedy tokens as alone (measured here; with
    /// repack off and flash attention on it does). Single-token decoding is as fast without it, but
    /// small multi-token passes are not: 4 tokens cost ≈ 1.7× one token repacked, ≈ 2.1× not.
    /// `placement`: the devices offloaded layers go to and their shares (default: the local GPUs).
    public init(path: String, gpuLayers: Int32 = -1, repack: Bool = false, placement: Placement = Placement()) throws {
        LlamaBackend.initialise()
        try Model.checkFile(path)
        var params = llama_model_default_params()
        params.n_gpu_layers = gpuLayers
        params.use_extra_bufts = repack
        let devices = placement.devices ?? Device.localGPUs
        // NULL-terminated, as llama.cpp reads it; both arrays must outlive the load call.
        var list: [ggml_backend_dev_t?] = devices.map(\.pointer) + [nil]
        var split = [Float](repeating: 0, count: Int(llama_max_devices()))
        for (i, share) in (placement.tensorSplit ?? []).prefix(split.count).enumerated() { split[i] = share }
        let loaded = list.withUnsafeMutableBufferPointer { list in
            split.withUnsafeBufferPointer { split in
                if placement.devices != nil { params.devices = list.baseAddress }
                if placement.tensorSplit != nil { params.tensor_split = split.baseAddress }
                return llama_model_load_from_file(path, params)
            }
        }
        guard let model = loaded else {
            if let endpoint = devices.compactMap(\.endpoint).first(where: RemoteDevices.hasFailed) {
                throw LlamaError.rpcServer(endpoint: endpoint, reason: "the connection failed while \(path) was loading")
            }
            throw LlamaError.modelLoadFailed(path: path)
        }
        pointer = model
        self.path = path
        vocab = Vocab(llama_model_get_vocab(model)!)
        self.devices = gpuLayers == 0 ? [] : devices
        let layers = Int(llama_model_n_layer(model))
        offloadedLayers = self.devices.isEmpty ? 0 : gpuLayers < 0 ? layers : min(Int(gpuLayers), layers)
    }

    /// Where its layers are: "CPU", the devices they were offloaded to (as "CUDA0 (NVIDIA H200)"),
    /// or both ("CPU + RPC0 (10.0.0.2:50052)") when only some left the CPU.
    public var device: String {
        let places = (offloadedLayers < layerCount ? ["CPU"] : []) + devices.map(\.description)
        return places.joined(separator: " + ")
    }

    deinit { llama_model_free(pointer) }

    static func checkFile(_ path: String) throws {
        guard let file = fopen(path, "rb") else { throw LlamaError.modelNotFound(path: path) }
        defer { fclose(file) }
        var magic = [UInt8](repeating: 0, count: 4)
        guard fread(&magic, 1, 4, file) == 4, magic == Array("GGUF".utf8) else {
            throw LlamaError.notGGUF(path: path)
        }
    }

    public var trainedContext: Int { Int(llama_model_n_ctx_train(pointer)) }
    public var layerCount: Int { Int(llama_model_n_layer(pointer)) }
    public var parameterCount: UInt64 { llama_model_n_params(pointer) }
    public var sizeBytes: UInt64 { llama_model_size(pointer) }
    public var embeddingSize: Int { Int(llama_model_n_embd(pointer)) }
    /// Tokens a sliding-window layer attends to (0: every layer sees the whole context).
    public var slidingWindow: Int { Int(llama_model_n_swa(pointer)) }

    /// The model's one-line description from llama.cpp (architecture, size, quantisation).
    public var summary: String {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = llama_model_desc(pointer, &buffer, buffer.count)
        return n > 0 ? Self.text(buffer) : "unknown"
    }

    /// A GGUF metadata value such as `general.architecture`, or nil when absent.
    public func metadata(_ key: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 512)
        let n = llama_model_meta_val_str(pointer, key, &buffer, buffer.count)
        guard n >= 0 else { return nil }
        if Int(n) >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(n) + 1)
            _ = llama_model_meta_val_str(pointer, key, &buffer, buffer.count)
        }
        return Self.text(buffer)
    }

    /// A NUL-terminated C string llama.cpp wrote into `buffer`.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The chat template stored in the GGUF (`tokenizer.chat_template`), nil for base models.
    public var chatTemplate: String? {
        guard let t = llama_model_chat_template(pointer, nil) else { return nil }
        return String(cString: t)
    }

    /// Formats `messages` with the model's own template, ending with the assistant's turn opened.
    public func applyChatTemplate(_ messages: [ChatMessage], addAssistant: Bool = true) throws -> String {
        guard let template = llama_model_chat_template(pointer, nil) else {
            throw LlamaError.chatTemplate("\(path) has no chat template (a base model?)")
        }
        let roles = messages.map { strdup($0.role)! }
        let contents = messages.map { strdup($0.content)! }
        defer { (roles + contents).forEach { free($0) } }
        var chat = (0..<messages.count).map { llama_chat_message(role: roles[$0], content: contents[$0]) }
        var capacity = max(1024, 2 * messages.reduce(0) { $0 + $1.content.utf8.count + 64 })
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let n = llama_chat_apply_template(template, &chat, chat.count, addAssistant, &buffer, Int32(capacity))
            guard n >= 0 else { throw LlamaError.chatTemplate("llama.cpp does not support the template of \(path)") }
            if Int(n) < capacity {
                return String(decoding: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            capacity = Int(n) + 1
        }
    }
}

/// Where a model's offloaded layers go.
public struct Placement: Sendable, Equatable {
    /// nil: every local GPU (llama.cpp's default); empty: none, everything on the CPU.
    public var devices: [Device]?
    /// Shares of the offloaded layers, in `devices`' order (nil: in proportion to free memory).
    public var tensorSplit: [Float]?
    public init(devices: [Device]? = nil, tensorSplit: [Float]? = nil) {
        self.devices = devices
        self.tensorSplit = tensorSplit
    }
}

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}
