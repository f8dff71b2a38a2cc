using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Text;

/// <summary>One piece of a parsed prompt: its text and attention multiplier (<see cref="IsBreak"/>: a BREAK marker).</summary>
public sealed record WeightedText(string Text, double Weight)
{
    /// <summary>AUTOMATIC1111 marks BREAK as the text "BREAK" with weight −1.</summary>
    public bool IsBreak => Weight == -1 && Text == "BREAK";
}

/// <summary>Options of the long-prompt chunker.</summary>
public sealed record PromptChunkOptions
{
    /// <summary>
    /// A1111's <c>comma_padding_backtrack</c> (default 20): when a chunk is full and the last comma is at most this many
    /// tokens from its end, the tokens after the comma move to the next chunk. 0 turns it off.
    /// </summary>
    public int CommaBacktrack { get; init; } = 20;

    /// <summary>Parse (x), [x], (x:1.3), escapes and BREAK; false treats the whole prompt as plain text with weight 1.</summary>
    public bool ParseEmphasis { get; init; } = true;

    /// <summary>Throws with the option's name and the fix if a value is out of range.</summary>
    public void Validate()
    {
        if (CommaBacktrack < 0 || CommaBacktrack > 74)
            throw new ArgumentOutOfRangeException(nameof(CommaBacktrack), CommaBacktrack, "CommaBacktrack must be between 0 (off) and 74; A1111's default is 20.");
    }
}

/// <summary>
/// A prompt cut into encoder-sized chunks: <c>Ids[c, 0..76]</c> = [BOS] + up to 75 BPE ids + [EOS] + pad, and the
/// per-token attention multipliers <c>Weights[c, 0..76]</c> (1 for BOS/EOS/pad).
/// </summary>
public sealed class PromptChunks
{
    internal PromptChunks(long[,] ids, float[,] weights, int tokenCount, IReadOnlyList<WeightedText> parsed)
    {
        Ids = ids; Weights = weights; TokenCount = tokenCount; Parsed = parsed;
    }

    /// <summary>[chunks, 77] token ids (int64, as the text encoder takes them).</summary>
    public long[,] Ids { get; }
    /// <summary>[chunks, 77] attention multipliers.</summary>
    public float[,] Weights { get; }
    /// <summary>Number of chunks (≥ 1).</summary>
    public int ChunkCount => Ids.GetLength(0);
    /// <summary>Tokens per chunk (77).</summary>
    public int ChunkLength => Ids.GetLength(1);
    /// <summary>A1111's token count: 75 per full chunk plus the tokens of the last one.</summary>
    public int TokenCount { get; }
    /// <summary>The parsed prompt (text, weight) pieces the chunks were built from.</summary>
    public IReadOnlyList<WeightedText> Parsed { get; }

    /// <summary>The ids as a [chunks, 77] int64 tensor.</summary>
    public Tensor IdsTensor(Device? device = null)
    {
        var flat = new long[Ids.Length];
        Buffer.BlockCopy(Ids, 0, flat, 0, flat.Length * sizeof(long));
        return torch.tensor(flat, [ChunkCount, ChunkLength], device: device);
    }

    /// <summary>The ids of chunk <paramref name="c"/>.</summary>
    public long[] ChunkIds(int c) => Enumerable.Range(0, ChunkLength).Select(i => Ids[c, i]).ToArray();
    /// <summary>The weights of chunk <paramref name="c"/>.</summary>
    public float[] ChunkWeights(int c) => Enumerable.Range(0, ChunkLength).Select(i => Weights[c, i]).ToArray();

    /// <summary>These chunks followed by <paramref name="count"/> − ChunkCount copies of <paramref name="empty"/>'s first chunk.</summary>
    internal PromptChunks PadTo(int count, PromptChunks empty)
    {
        if (count <= ChunkCount) return this;
        int L = ChunkLength;
        var ids = new long[count, L];
        var w = new float[count, L];
        for (int c = 0; c < count; c++)
            for (int i = 0; i < L; i++)
            {
                bool own = c < ChunkCount;
                ids[c, i] = own ? Ids[c, i] : empty.Ids[0, i];
                w[c, i] = own ? Weights[c, i] : empty.Weights[0, i];
            }
        return new PromptChunks(ids, w, TokenCount, Parsed);
    }
}

/// <summary>
/// AUTOMATIC1111 stable-diffusion-webui prompt emphasis and long prompts: <see cref="Parse"/> is
/// <c>modules/prompt_parser.py parse_prompt_attention</c>; <see cref="Tokenize"/> is
/// <c>modules/sd_hijack_clip.py tokenize_line</c> (75-token chunks with the comma back-off);
/// <see cref="ApplyWeights"/> is <c>modules/sd_emphasis.py EmphasisOriginal</c> (multiply, restore the mean) followed by
/// A1111's concatenation of chunks along the token axis.
/// </summary>
public static partial class PromptWeighting
{
    /// <summary>(x) multiplies attention by 1.1.</summary>
    public const double RoundBracketMultiplier = 1.1;
    /// <summary>[x] divides attention by 1.1.</summary>
    public const double SquareBracketMultiplier = 1 / 1.1;

    [GeneratedRegex(@"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")]
    private static partial Regex AttentionRegex();

    [GeneratedRegex(@"\s*\bBREAK\b\s*", RegexOptions.Singleline)]
    private static partial Regex BreakRegex();

    /// <summary>
    /// Parses emphasis syntax exactly as A1111: <c>(a)</c> ×1.1, <c>[a]</c> ÷1.1, <c>(a:1.3)</c> ×1.3, nesting multiplies,
    /// <c>\( \) \[ \] \\</c> are literals, unbalanced openers apply to the rest of the prompt, <c>BREAK</c> becomes a
    /// ("BREAK", −1) marker, and neighbours with equal weights are merged. An empty prompt gives [("", 1)].
    /// A weight such as "1.2.3" that Python's float() rejects makes A1111 fail; here it throws an
    /// <see cref="ArgumentException"/> that names it.
    /// </summary>
    public static IReadOnlyList<WeightedText> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var res = new List<(string Text, double Weight)>();
        var round = new List<int>();
        var square = new List<int>();

        void MultiplyRange(int start, double m)
        {
            for (int p = start; p < res.Count; p++) res[p] = (res[p].Text, res[p].Weight * m);
        }
        static int Pop(List<int> stack) { var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v; }

        foreach (Match m in AttentionRegex().Matches(prompt))
        {
            var text = m.Value;
            var weight = m.Groups[1].Success ? m.Groups[1].Value : null;
            if (text.StartsWith('\\')) res.Add((text[1..], 1.0));
            else if (text == "(") round.Add(res.Count);
            else if (text == "[") square.Add(res.Count);
            else if (weight is not null && round.Count > 0) MultiplyRange(Pop(round), ParsePythonFloat(weight, prompt));
            else if (text == ")" && round.Count > 0) MultiplyRange(Pop(round), RoundBracketMultiplier);
            else if (text == "]" && square.Count > 0) MultiplyRange(Pop(square), SquareBracketMultiplier);
            else
            {
                var parts = BreakRegex().Split(text);
                for (int i = 0; i < parts.Length; i++)
                {
                    if (i > 0) res.Add(("BREAK", -1));
                    res.Add((parts[i], 1.0));
                }
            }
        }
        foreach (var pos in round) MultiplyRange(pos, RoundBracketMultiplier);
        foreach (var pos in square) MultiplyRange(pos, SquareBracketMultiplier);
        if (res.Count == 0) res.Add(("", 1.0));

        for (int i = 0; i + 1 < res.Count;)
        {
            if (res[i].Weight == res[i + 1].Weight)
            {
                res[i] = (res[i].Text + res[i + 1].Text, res[i].Weight);
                res.RemoveAt(i + 1);
            }
            else i++;
        }
        return res.Select(r => new WeightedText(r.Text, r.Weight)).ToArray();
    }

    static double ParsePythonFloat(string s, string prompt)
    {
        if (double.TryParse(s, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var v)
            && s.Count(ch => ch == '.') <= 1 && s.Any(char.IsDigit))
            return v;
        throw new ArgumentException($"The prompt weight ':{s})' is not a number (in \"{prompt}\"). Write it like (word:1.3).", nameof(prompt));
    }

    /// <summary>
    /// A1111 <c>tokenize_line</c>: tokenizes each parsed piece separately (no BOS/EOS), fills chunks of
    /// <c>tok.MaxContentTokens</c> (75) tokens, moving the tail after the last comma into the next chunk when that comma
    /// is within <see cref="PromptChunkOptions.CommaBacktrack"/> tokens of the end, starts a new chunk at BREAK, and
    /// wraps each chunk as [BOS] + tokens + [EOS] + padding (<c>tok.PadId</c>; weights 1). An empty prompt gives one chunk.
    /// </summary>
    public static PromptChunks Tokenize(ClipTokenizer tok, string prompt, PromptChunkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tok);
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new PromptChunkOptions();
        options.Validate();

        var parsed = options.ParseEmphasis ? Parse(prompt) : [new WeightedText(prompt, 1.0)];
        int chunkLength = tok.MaxContentTokens;
        int commaToken = tok.TokenToId("," + ClipTokenizer.EndOfWord) ?? -1;

        var chunks = new List<(List<int> Tokens, List<float> Mults)>();
        var tokens = new List<int>();
        var mults = new List<float>();
        int tokenCount = 0, lastComma = -1;

        void NextChunk(bool isLast = false)
        {
            tokenCount += isLast ? tokens.Count : chunkLength;
            chunks.Add((tokens, mults));
            tokens = [];
            mults = [];
            lastComma = -1;
        }

        foreach (var piece in parsed)
        {
            if (piece.IsBreak) { NextChunk(); continue; }
            var ids = tok.Encode(piece.Text);
            float weight = (float)piece.Weight;
            foreach (var token in ids)
            {
                if (token == commaToken) lastComma = tokens.Count;
                else if (options.CommaBacktrack != 0 && tokens.Count == chunkLength && lastComma != -1
                         && tokens.Count - lastComma <= options.CommaBacktrack)
                {
                    int breakAt = lastComma + 1;
                    var relocTokens = tokens.GetRange(breakAt, tokens.Count - breakAt);
                    var relocMults = mults.GetRange(breakAt, mults.Count - breakAt);
                    tokens.RemoveRange(breakAt, tokens.Count - breakAt);
                    mults.RemoveRange(breakAt, mults.Count - breakAt);
                    NextChunk();
                    tokens = relocTokens;
                    mults = relocMults;
                }
                if (tokens.Count == chunkLength) NextChunk();
                tokens.Add(token);
                mults.Add(weight);
            }
        }
        if (tokens.Count > 0 || chunks.Count == 0) NextChunk(isLast: true);

        int L = tok.ModelMaxLength;
        var idArr = new long[chunks.Count, L];
        var wArr = new float[chunks.Count, L];
        for (int c = 0; c < chunks.Count; c++)
        {
            var (t, w) = chunks[c];
            idArr[c, 0] = tok.BosId;
            wArr[c, 0] = 1f;
            for (int i = 0; i < t.Count; i++) { idArr[c, i + 1] = t[i]; wArr[c, i + 1] = w[i]; }
            idArr[c, t.Count + 1] = tok.EosId;
            wArr[c, t.Count + 1] = 1f;
            // A1111 pads with EOS and, when pad != EOS (SD 2.x), replaces everything after the first EOS with pad.
            for (int i = t.Count + 2; i < L; i++) { idArr[c, i] = tok.PadId; wArr[c, i] = 1f; }
        }
        return new PromptChunks(idArr, wArr, tokenCount, parsed);
    }

    /// <summary>
    /// Makes cond and uncond the same number of chunks, as A1111 does (<c>pad_cond_uncond</c>): the shorter one gets
    /// chunks of the empty prompt appended.
    /// </summary>
    public static (PromptChunks Cond, PromptChunks Uncond) MatchChunkCounts(ClipTokenizer tok, PromptChunks cond, PromptChunks uncond)
    {
        ArgumentNullException.ThrowIfNull(cond);
        ArgumentNullException.ThrowIfNull(uncond);
        int n = Math.Max(cond.ChunkCount, uncond.ChunkCount);
        var empty = Tokenize(tok, "");
        return (cond.PadTo(n, empty), uncond.PadTo(n, empty));
    }

    /// <summary>
    /// A1111's original emphasis on text-encoder output: per chunk, <c>z *= weights</c> then <c>z *= mean_before / mean_after</c>
    /// (mean over the whole chunk), then the chunks concatenated along the token axis.
    /// <paramref name="hidden"/> is [chunks, 77, D] (or [1, chunks·77, D] is not accepted); the result is [1, 77·chunks, D]
    /// in the input's dtype. If a chunk's weighted mean is exactly 0 its rescale is skipped (A1111 would produce inf/NaN).
    /// </summary>
    public static Tensor ApplyWeights(Tensor hidden, float[,] weights)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(weights);
        if (hidden.dim() != 3)
            throw new ArgumentException($"hidden must be [chunks, tokens, dim]; got [{string.Join(",", hidden.shape)}].", nameof(hidden));
        long chunks = hidden.shape[0], len = hidden.shape[1], dim = hidden.shape[2];
        if (weights.GetLength(0) != chunks || weights.GetLength(1) != len)
            throw new ArgumentException($"weights are [{weights.GetLength(0)}, {weights.GetLength(1)}] but hidden is [{chunks}, {len}, {dim}]; use the Weights of the same PromptChunks.", nameof(weights));

        using var scope = torch.NewDisposeScope();
        var flat = new float[weights.Length];
        Buffer.BlockCopy(weights, 0, flat, 0, flat.Length * sizeof(float));
        var w = torch.tensor(flat, [chunks, len, 1], device: hidden.device).to(hidden.dtype);
        var originalMean = hidden.mean([1, 2], keepdim: true);
        var z = hidden * w;
        var newMean = z.mean([1, 2], keepdim: true);
        var scale = torch.where(newMean.eq(0), torch.ones_like(newMean), originalMean / newMean);
        z = z * scale;
        return z.reshape(1, chunks * len, dim).MoveToOuterDisposeScope();
    }
}
