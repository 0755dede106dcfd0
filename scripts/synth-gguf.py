#!/usr/bin/env python3
"""Writes a qwen2-architecture GGUF with random F16 weights, for timing runs where no real weights
can be fetched (scripts/gpu-run.sh). The shapes are those of real Qwen2.5 models, so a pass costs
what it would with trained weights; the text is noise, which is why those runs fix α with the
random verifier instead of measuring it.

Usage: synth-gguf.py --shape qwen2.5-7b|qwen2.5-0.5b|tiny --out FILE [--vocab N] [--seed S] [--gguf-py DIR]
"""
import argparse
import os
import sys
import types

# name: (embedding, layers, heads, kv heads, feed-forward) — Qwen2.5's config.json values.
SHAPES = {
    "qwen2.5-7b": (3584, 28, 28, 4, 18944),
    "qwen2.5-1.5b": (1536, 28, 12, 2, 8960),
    "qwen2.5-0.5b": (896, 24, 14, 2, 4864),
    "tiny": (64, 2, 4, 2, 128),
}


def byte_level_alphabet():
    """GPT-2's byte-to-unicode map: the alphabet byte-level BPE vocabularies (Qwen's too) are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=SHAPES, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=151936, help="vocabulary size (target and draft must agree)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gguf-py", help="llama.cpp's gguf-py directory (default: the installed gguf package)")
    args = ap.parse_args()

    try:
        import numpy as np
    except ImportError:
        sys.exit("synth-gguf: numpy is required (gguf-py is built on it): apt-get install python3-numpy")
    if args.gguf_py:
        sys.path.insert(0, args.gguf_py)
    try:
        import yaml  # noqa: F401
    except ImportError:
        # gguf-py imports PyYAML only to read model cards, which this file never has.
        sys.modules["yaml"] = types.ModuleType("yaml")
    import gguf

    n_embd, n_layer, n_head, n_head_kv, n_ff = SHAPES[args.shape]
    head_dim = n_embd // n_head
    alphabet = byte_level_alphabet()
    # 256 byte tokens make every text tokenizable; one merge satisfies the BPE loader; fillers pad the
    # vocabulary to its real size (the output layer's cost); the last id ends generation.
    tokens = alphabet + ["ĠĠ"]
    tokens += ["<synth%d>" % i for i in range(args.vocab - len(tokens) - 1)] + ["<|endoftext|>"]
    if len(tokens) != args.vocab:
        sys.exit("synth-gguf: --vocab must be at least 258")
    types_ = [gguf.TokenType.NORMAL] * (args.vocab - 1) + [gguf.TokenType.CONTROL]

    w = gguf.GGUFWriter(args.out, "qwen2")
    w.add_name("synthetic " + args.shape)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(32768)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types_)
    w.add_token_merges(["Ġ Ġ"])
    w.add_eos_token_id(args.vocab - 1)
    w.add_bos_token_id(args.vocab - 1)
    w.add_add_bos_token(False)

    # (name, numpy shape: rows = outputs), in file order. Norms are ones, as trained RMSNorm weights
    # roughly are; everything else is N(0, 0.02).
    plan = [("token_embd.weight", (args.vocab, n_embd))]
    for i in range(n_layer):
        b = "blk.%d." % i
        plan += [(b + "attn_norm.weight", (n_embd,)),
                 (b + "attn_q.weight", (n_embd, n_embd)), (b + "attn_q.bias", (n_embd,)),
                 (b + "attn_k.weight", (n_head_kv * head_dim, n_embd)), (b + "attn_k.bias", (n_head_kv * head_dim,)),
                 (b + "attn_v.weight", (n_head_kv * head_dim, n_embd)), (b + "attn_v.bias", (n_head_kv * head_dim,)),
                 (b + "attn_output.weight", (n_embd, n_embd)),
                 (b + "ffn_norm.weight", (n_embd,)),
                 (b + "ffn_gate.weight", (n_ff, n_embd)), (b + "ffn_up.weight", (n_ff, n_embd)),
                 (b + "ffn_down.weight", (n_embd, n_ff))]
    plan += [("output_norm.weight", (n_embd,)), ("output.weight", (args.vocab, n_embd))]

    # Norms stay F32 as llama.cpp's converter writes them; matrices are F16. Tensors are streamed
    # one at a time, so a 7B-shaped file needs memory for its largest tensor only.
    def dtype_of(shape):
        return np.float32 if len(shape) == 1 else np.float16

    for name, shape in plan:
        dt = dtype_of(shape)
        w.add_tensor_info(name, shape, np.dtype(dt), int(np.prod(shape)) * np.dtype(dt).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    # Drawing 7.6 billion normals takes minutes; a pass costs the same whatever the values, so each
    # tensor repeats a pool of 2^24 draws from a random offset, a copy at memory speed.
    rng = np.random.default_rng(args.seed)
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02)
    pools = {np.float16: pool.astype(np.float16), np.float32: pool}
    total = sum(int(np.prod(s)) for _, s in plan)
    done = shown = 0
    for name, shape in plan:
        dt = dtype_of(shape)
        if name.endswith("norm.weight"):
            data = np.ones(shape, dtype=dt)
        else:
            data = np.resize(pools[dt][rng.integers(1 << 23):], shape)
        w.write_tensor_data(data)
        done += data.size
        if 100 * done // total > shown:
            shown = 100 * done // total
            print("\r%s: %3d%% of %.2fB parameters" % (os.path.basename(args.out), shown, total / 1e9),
                  end="", file=sys.stderr)
    w.close()
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
