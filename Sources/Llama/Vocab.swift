import CLlama

public typealias Token = Int32

/// Tokenizer and special tokens of a model. The vocabulary is owned by its `Model`.
/// Unchecked: llama.cpp never changes a vocabulary after loading, so reading it from any thread is safe.
public struct Vocab: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    public var count: Int { Int(llama_vocab_n_tokens(pointer)) }
    public var bos: Token { llama_vocab_bos(pointer) }
    public var eos: Token { llama_vocab_eos(pointer) }
    /// The token a chat turn ends with: EOT where the model has one, else EOS.
    public var endOfTurn: Token {
        let eot = llama_vocab_eot(pointer)
        return eot == LLAMA_TOKEN_NULL ? eos : eot
    }

    /// End of generation: EOS, EOT and the model's other stop tokens.
    public func isEndOfGeneration(_ token: Token) -> Bool { llama_vocab_is_eog(pointer, token) }

    /// `addSpecial` adds BOS where the model wants it; `parseSpecial` turns `<|im_start|>` and the
    /// like into their control tokens (needed for chat-formatted prompts).
    public func tokenize(_ text: String, addSpecial: Bool = false, parseSpecial: Bool = true) throws -> [Token] {
        let bytes = Array(text.utf8)
        var capacity = bytes.count + 8
        while true {
            var tokens = [Token](repeating: 0, count: capacity)
            let n = bytes.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) {
                    llama_tokenize(pointer, $0.baseAddress, Int32(bytes.count), &tokens, Int32(capacity), addSpecial, parseSpecial)
                }
            }
            if n == Int32.min { throw LlamaError.tokenizeFailed("text of \(bytes.count) bytes overflows int32 tokens") }
            if n >= 0 { return Array(tokens[0..<Int(n)]) }
            capacity = Int(-n)
        }
    }

    /// The raw bytes a token stands for. A multi-byte character can be split across tokens, so
    /// callers that stream text join bytes before decoding UTF-8.
    public func pieceBytes(_ token: Token, special: Bool = false) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 64)
        var n = llama_token_to_piece(pointer, token, &buffer, Int32(buffer.count), 0, special)
        if n < 0 {
            buffer = [CChar](repeating: 0, count: Int(-n))
            n = llama_token_to_piece(pointer, token, &buffer, Int32(buffer.count), 0, special)
        }
        return buffer[0..<max(0, Int(n))].map { UInt8(bitPattern: $0) }
    }

    /// The most prompt bytes one token can stand for, so a prompt's length in bytes bounds its
    /// length in tokens from below before it is tokenised: the longest piece (special tokens
    /// included), doubled for normalisers that drop bytes (WPM strips accents). nil for UGM, whose
    /// normaliser folds a run of blanks of any length into one token.
    public func maxBytesPerToken() -> Int? {
        guard llama_vocab_type(pointer) != LLAMA_VOCAB_TYPE_UGM else { return nil }
        return 2 * (0..<count).reduce(1) { max($0, pieceBytes(Token($1), special: true).count) }
    }

    /// A digest of the tokenizer type and every token's bytes: two models with the same
    /// fingerprint read token ids the same way, so they can pass ids to each other.
    public func fingerprint() -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        for byte in "\(llama_vocab_type(pointer).rawValue):\(count)".utf8 { mix(byte) }
        for token in 0..<count {
            let bytes = pieceBytes(Token(token), special: true)
            // The length first, so no two lists of pieces run together into the same bytes.
            for byte in "\(bytes.count):".utf8 { mix(byte) }
            bytes.forEach(mix)
        }
        return hash
    }

    public func piece(_ token: Token, special: Bool = false) -> String {
        String(decoding: pieceBytes(token, special: special), as: UTF8.self)
    }

    /// Text of a token sequence (control tokens left out unless `special`).
    public func detokenize(_ tokens: [Token], special: Bool = false) -> String {
        if tokens.isEmpty { return "" }
        var capacity = tokens.count * 8 + 16
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let n = llama_detokenize(pointer, tokens, Int32(tokens.count), &buffer, Int32(capacity), false, special)
            if n >= 0 { return String(decoding: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            capacity = Int(-n) + 1
        }
    }
}
