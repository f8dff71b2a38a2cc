using System.Text;
using System.Text.Json;
using DreamBooth.Loading;
using Microsoft.ML.Tokenizers;

namespace DreamBooth.Text;

/// <summary>
/// The CLIP BPE tokenizer of Stable Diffusion, read from a Hugging Face <c>tokenizer/</c> folder (vocab.json,
/// merges.txt, tokenizer_config.json, special_tokens_map.json), matching transformers' slow <c>CLIPTokenizer</c>
/// (the one diffusers' SD pipelines use) with ftfy installed.
/// <para>Built on Microsoft.ML.Tokenizers: its <see cref="BpeTokenizer"/> (byte-level, end-of-word suffix
/// <c>&lt;/w&gt;</c>) does the byte-to-unicode mapping, the rank-ordered merges and id lookup, with our
/// <see cref="ClipPreTokenizer"/> as its pre-tokenizer. Done here because the library has no equivalent:
/// (1) splitting the raw text at the added/special tokens before any clean-up (transformers' added-token trie;
/// this is what makes SD 2.x's pad token "!" a separate id 0), and (2) the ftfy text clean-up
/// (<see cref="TextCleaner"/>), which must run per segment after that split, so it cannot be the library's
/// <see cref="Normalizer"/> (the library normalizes before it splits off special tokens).</para>
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>End-of-word suffix of CLIP's vocabulary.</summary>
    public const string EndOfWord = "</w>";

    readonly BpeTokenizer _bpe;
    readonly IReadOnlyDictionary<string, int> _vocab;
    readonly Dictionary<int, string> _idToToken;
    readonly Dictionary<string, int> _mergeRankOfToken;
    readonly (string Text, int Id)[] _addedTokens; // longest first
    readonly HashSet<int> _specialIds;

    ClipTokenizer(BpeTokenizer bpe, IReadOnlyDictionary<string, int> vocab, Dictionary<string, int> mergeRankOfToken,
        string bos, string eos, string pad, string unk, int modelMaxLength, IEnumerable<(string, int)> added, string source)
    {
        _bpe = bpe;
        _vocab = vocab;
        _idToToken = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
        _mergeRankOfToken = mergeRankOfToken;
        BosToken = bos; EosToken = eos; PadToken = pad; UnkToken = unk;
        BosId = vocab[bos]; EosId = vocab[eos]; PadId = vocab[pad]; UnkId = vocab[unk];
        ModelMaxLength = modelMaxLength;
        _addedTokens = added.DistinctBy(a => a.Item1).OrderByDescending(a => a.Item1.Length).ToArray();
        _specialIds = [.. _addedTokens.Select(a => a.Id), BosId, EosId, PadId, UnkId];
        Source = source;
    }

    /// <summary>Where the tokenizer was loaded from (for messages).</summary>
    public string Source { get; }
    /// <summary>Id of the begin-of-text token (49406 in CLIP).</summary>
    public int BosId { get; }
    /// <summary>Id of the end-of-text token (49407 in CLIP).</summary>
    public int EosId { get; }
    /// <summary>Id used to pad to <see cref="ModelMaxLength"/>: 49407 for SD 1.x, 0 ("!") for SD 2.x.</summary>
    public int PadId { get; }
    /// <summary>Id of the unknown token (the end-of-text token in CLIP).</summary>
    public int UnkId { get; }
    /// <summary>The special token strings, as the config files name them.</summary>
    public string BosToken { get; }
    /// <inheritdoc cref="BosToken"/>
    public string EosToken { get; }
    /// <inheritdoc cref="BosToken"/>
    public string PadToken { get; }
    /// <inheritdoc cref="BosToken"/>
    public string UnkToken { get; }
    /// <summary>Sequence length the text encoder reads (77), BOS and EOS included.</summary>
    public int ModelMaxLength { get; }
    /// <summary>BPE ids per sequence between BOS and EOS (<see cref="ModelMaxLength"/> − 2 = 75).</summary>
    public int MaxContentTokens => ModelMaxLength - 2;
    /// <summary>Number of entries in vocab.json (49,408 for CLIP).</summary>
    public int VocabSize => _vocab.Count;
    /// <summary>token → id, as in vocab.json.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocab;
    /// <summary>Number of merges read from merges.txt.</summary>
    public int MergeCount => _mergeRankOfToken.Count;

    /// <summary>
    /// Loads a tokenizer folder. <paramref name="folder"/> may be the <c>tokenizer/</c> folder itself or a diffusers
    /// model folder that contains one. Throws <see cref="ModelLoadException"/> naming the file on missing or corrupt files.
    /// </summary>
    public static ClipTokenizer FromFolder(string folder)
    {
        if (!Directory.Exists(folder))
            throw new ModelLoadException(folder, "tokenizer folder not found; pass the model's tokenizer/ folder (or the model folder that contains it).");
        if (!File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "tokenizer", "vocab.json")))
            folder = Path.Combine(folder, "tokenizer");
        return FromFiles(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"), folder);
    }

    /// <summary>
    /// Loads vocab.json and merges.txt, and the optional tokenizer_config.json / special_tokens_map.json from
    /// <paramref name="configFolder"/> (defaults: CLIP's &lt;|startoftext|&gt; / &lt;|endoftext|&gt;, pad = eos, 77).
    /// </summary>
    public static ClipTokenizer FromFiles(string vocabJson, string mergesTxt, string? configFolder = null)
    {
        var vocab = ReadVocab(vocabJson);
        var merges = ReadMerges(mergesTxt, vocab);

        var cfg = new TokenizerSettings();
        if (configFolder is not null)
        {
            ReadSpecialTokensMap(Path.Combine(configFolder, "special_tokens_map.json"), cfg);
            ReadTokenizerConfig(Path.Combine(configFolder, "tokenizer_config.json"), cfg);
        }
        string configName = configFolder is null ? vocabJson : Path.Combine(configFolder, "tokenizer_config.json");
        foreach (var (role, tok) in new[] { ("bos_token", cfg.Bos), ("eos_token", cfg.Eos), ("pad_token", cfg.Pad), ("unk_token", cfg.Unk) })
            if (!vocab.ContainsKey(tok))
                throw new ModelLoadException(configName, $"{role} '{tok}' is not in {vocabJson}; the config and vocabulary do not belong together.");
        foreach (var (id, tok) in cfg.AddedTokens)
            if (!vocab.TryGetValue(tok, out var vid) || vid != id)
                throw new ModelLoadException(configName, $"added token '{tok}' has id {id} in added_tokens_decoder but {(vocab.TryGetValue(tok, out var v2) ? v2.ToString(System.Globalization.CultureInfo.InvariantCulture) : "is missing")} in {vocabJson}; extra added tokens beyond vocab.json are not supported.");
        if (cfg.ModelMaxLength < 3 || cfg.ModelMaxLength > 4096)
            throw new ModelLoadException(configName, $"model_max_length {cfg.ModelMaxLength} is not a usable CLIP context length (expected 77).");

        var added = new List<(string, int)> { (cfg.Bos, vocab[cfg.Bos]), (cfg.Eos, vocab[cfg.Eos]), (cfg.Pad, vocab[cfg.Pad]), (cfg.Unk, vocab[cfg.Unk]) };
        added.AddRange(cfg.AddedTokens.Select(a => (a.Token, a.Id)));

        BpeTokenizer bpe;
        try
        {
            var options = new BpeOptions(vocab)
            {
                Merges = merges.Select(m => m.Left + " " + m.Right).ToArray(),
                EndOfWordSuffix = EndOfWord,
                ByteLevel = true,
                PreTokenizer = ClipPreTokenizer.Instance,
                // The regex alternatives <|startoftext|> / <|endoftext|> map to their ids, as in CLIP's bpe cache.
                SpecialTokens = new Dictionary<string, int>
                {
                    ["<|startoftext|>"] = vocab.GetValueOrDefault("<|startoftext|>", vocab[cfg.Bos]),
                    ["<|endoftext|>"] = vocab.GetValueOrDefault("<|endoftext|>", vocab[cfg.Eos]),
                },
            };
            bpe = BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new ModelLoadException(mergesTxt, $"the BPE model could not be built from these files: {e.Message}", e);
        }

        var rankOfToken = new Dictionary<string, int>(merges.Count);
        for (int r = 0; r < merges.Count; r++) rankOfToken.TryAdd(merges[r].Left + merges[r].Right, r);
        return new ClipTokenizer(bpe, vocab, rankOfToken, cfg.Bos, cfg.Eos, cfg.Pad, cfg.Unk, cfg.ModelMaxLength, added,
            Path.GetDirectoryName(Path.GetFullPath(vocabJson)) ?? vocabJson);
    }

    // ---------------- encoding ----------------

    /// <summary>BPE ids of <paramref name="text"/>: no BOS/EOS, no truncation (transformers <c>add_special_tokens=False</c>).</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        foreach (var (segment, specialId) in SplitOnAddedTokens(text))
        {
            if (specialId is int sid) { ids.Add(sid); continue; }
            var clean = TextCleaner.CleanForClip(segment);
            if (clean.Length == 0) continue;
            ids.AddRange(_bpe.EncodeToIds(clean, considerPreTokenization: true, considerNormalization: false));
        }
        return [.. ids];
    }

    /// <summary>The BPE token strings of <paramref name="text"/> (byte-level alphabet, <c>&lt;/w&gt;</c> ends a word).</summary>
    public IReadOnlyList<string> Tokens(string text) => Encode(text).Select(IdToToken).ToArray();

    /// <summary>The vocabulary string of <paramref name="id"/>; throws for an id outside the vocabulary.</summary>
    public string IdToToken(int id) => _idToToken.TryGetValue(id, out var t)
        ? t : throw new ArgumentOutOfRangeException(nameof(id), id, $"id {id} is not in the vocabulary of {Source} (size {VocabSize}).");

    /// <summary>The id of a vocabulary string, or null.</summary>
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    /// <summary>
    /// Rank of the merge that created this token (0 = the first and most frequent merge in CLIP's training text),
    /// or null for the 512 base symbols and special tokens.
    /// </summary>
    public int? MergeRank(int id) => _idToToken.TryGetValue(id, out var t) && _mergeRankOfToken.TryGetValue(t, out var r) ? r : null;

    /// <summary>Whether <paramref name="id"/> is BOS, EOS, pad, unk or another added token.</summary>
    public bool IsSpecial(int id) => _specialIds.Contains(id);

    /// <summary>
    /// Text of the ids as transformers decodes them: byte-level symbols back to UTF-8 (invalid bytes → U+FFFD),
    /// <c>&lt;/w&gt;</c> → space, trimmed. Special tokens of the form &lt;|…|&gt; (BOS/EOS) are dropped unless <paramref name="keepSpecialTokens"/>.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool keepSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        void FlushBytes()
        {
            if (bytes.Count == 0) return;
            sb.Append(Encoding.UTF8.GetString([.. bytes]));
            bytes.Clear();
        }
        foreach (var id in ids)
        {
            var tok = IdToToken(id);
            if (IsSpecial(id) && tok.StartsWith("<|", StringComparison.Ordinal) && tok.EndsWith("|>", StringComparison.Ordinal))
            {
                if (keepSpecialTokens) { FlushBytes(); sb.Append(tok); }
                continue;
            }
            bool eow = tok.EndsWith(EndOfWord, StringComparison.Ordinal);
            var body = eow ? tok[..^EndOfWord.Length] : tok;
            foreach (var ch in body)
            {
                if (ByteLevelAlphabet.TryGetByte(ch, out var b)) bytes.Add(b);
                else { FlushBytes(); sb.Append(ch); }
            }
            if (eow) { FlushBytes(); sb.Append(' '); }
        }
        FlushBytes();
        return sb.ToString().Trim();
    }

    /// <summary>
    /// The 77 ids a Stable Diffusion pipeline feeds the text encoder: <c>[BOS] + ids[:75] + [EOS]</c>, padded with
    /// <see cref="PadId"/> (transformers <c>padding="max_length", truncation=True</c>). What is cut is reported.
    /// </summary>
    public TokenizedText EncodeForModel(string text)
    {
        var ids = Encode(text);
        int keep = Math.Min(ids.Length, MaxContentTokens);
        var input = new int[ModelMaxLength];
        input[0] = BosId;
        Array.Copy(ids, 0, input, 1, keep);
        input[keep + 1] = EosId;
        for (int i = keep + 2; i < ModelMaxLength; i++) input[i] = PadId;
        var cut = ids[keep..];
        return new TokenizedText(text, input, ids, ModelMaxLength, cut.Length > 0, cut,
            cut.Select(IdToToken).ToArray(), cut.Length > 0 ? Decode(cut) : string.Empty);
    }

    /// <summary>
    /// Splits raw text at added tokens (transformers' added-token trie: earliest match, longest first), before any
    /// clean-up. Returns text segments (SpecialId null) and special tokens (SpecialId set).
    /// </summary>
    internal List<(string Segment, int? SpecialId)> SplitOnAddedTokens(string text)
    {
        var result = new List<(string, int?)>();
        int start = 0, i = 0;
        while (i < text.Length)
        {
            int matchLen = 0, matchId = 0;
            foreach (var (tok, id) in _addedTokens)
            {
                if (tok.Length > 0 && i + tok.Length <= text.Length && string.CompareOrdinal(text, i, tok, 0, tok.Length) == 0)
                {
                    matchLen = tok.Length; matchId = id;
                    break; // longest first
                }
            }
            if (matchLen == 0) { i++; continue; }
            if (i > start) result.Add((text[start..i], null));
            result.Add((text.Substring(i, matchLen), matchId));
            i += matchLen;
            start = i;
        }
        if (start < text.Length) result.Add((text[start..], null));
        return result;
    }

    // ---------------- loading helpers ----------------

    sealed class TokenizerSettings
    {
        public string Bos = "<|startoftext|>";
        public string Eos = "<|endoftext|>";
        public string Unk = "<|endoftext|>";
        public string? PadOrNull;
        public string Pad => PadOrNull ?? Eos;
        public int ModelMaxLength = 77;
        public List<(int Id, string Token)> AddedTokens = [];
    }

    static Dictionary<string, int> ReadVocab(string path)
    {
        if (!File.Exists(path))
            throw new ModelLoadException(path, "missing; a CLIP tokenizer folder needs vocab.json and merges.txt (as transformers' save_pretrained writes them).");
        try
        {
            using var s = File.OpenRead(path);
            var d = JsonSerializer.Deserialize<Dictionary<string, int>>(s)
                ?? throw new ModelLoadException(path, "is empty (null JSON); expected an object mapping token → id.");
            if (d.Count < 512)
                throw new ModelLoadException(path, $"has only {d.Count} entries; a CLIP byte-level vocabulary has at least the 512 byte symbols.");
            return d;
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"is not a JSON object of token → integer id ({e.Message}). Re-download the tokenizer files.", e);
        }
    }

    static List<(string Left, string Right)> ReadMerges(string path, Dictionary<string, int> vocab)
    {
        if (!File.Exists(path))
            throw new ModelLoadException(path, "missing; a CLIP tokenizer folder needs vocab.json and merges.txt (as transformers' save_pretrained writes them).");
        var merges = new List<(string, string)>();
        int lineNo = 0;
        foreach (var raw in File.ReadLines(path, Encoding.UTF8))
        {
            lineNo++;
            // transformers skips the first line ("#version: ..."); merges themselves may start with '#', e.g. "# #</w>".
            if (lineNo == 1 && raw.StartsWith("#version", StringComparison.Ordinal)) continue;
            if (raw.Length == 0) continue;
            var parts = raw.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new ModelLoadException(path, $"line {lineNo} is not a merge 'a b': \"{Truncate(raw)}\".");
            if (!vocab.ContainsKey(parts[0] + parts[1]))
                throw new ModelLoadException(path, $"line {lineNo}: the merge result '{parts[0] + parts[1]}' is not in vocab.json; merges.txt and vocab.json do not belong together.");
            merges.Add((parts[0], parts[1]));
        }
        if (merges.Count == 0) throw new ModelLoadException(path, "contains no merges.");
        return merges;
    }

    static string Truncate(string s) => s.Length > 60 ? s[..60] + "…" : s;

    static JsonDocument? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try { return JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ModelLoadException(path, $"is not valid JSON ({e.Message}).", e); }
    }

    static string? TokenString(JsonElement e, string path, string field) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Object when e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
        JsonValueKind.Null => null,
        _ => throw new ModelLoadException(path, $"'{field}' must be a string or an object with 'content'."),
    };

    static void ReadSpecialTokens(JsonElement root, string path, TokenizerSettings cfg)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ModelLoadException(path, "must contain a JSON object.");
        if (root.TryGetProperty("bos_token", out var b) && TokenString(b, path, "bos_token") is { } bos) cfg.Bos = bos;
        if (root.TryGetProperty("eos_token", out var e) && TokenString(e, path, "eos_token") is { } eos) cfg.Eos = eos;
        if (root.TryGetProperty("unk_token", out var u) && TokenString(u, path, "unk_token") is { } unk) cfg.Unk = unk;
        if (root.TryGetProperty("pad_token", out var p) && TokenString(p, path, "pad_token") is { } pad) cfg.PadOrNull = pad;
    }

    static void ReadSpecialTokensMap(string path, TokenizerSettings cfg)
    {
        using var doc = ReadJson(path);
        if (doc is not null) ReadSpecialTokens(doc.RootElement, path, cfg);
    }

    static void ReadTokenizerConfig(string path, TokenizerSettings cfg)
    {
        using var doc = ReadJson(path);
        if (doc is null) return;
        var root = doc.RootElement;
        ReadSpecialTokens(root, path, cfg);
        if (root.TryGetProperty("model_max_length", out var m))
        {
            if (m.ValueKind != JsonValueKind.Number || !m.TryGetDouble(out var v))
                throw new ModelLoadException(path, "'model_max_length' must be a number.");
            // transformers writes a huge sentinel (1e30) when unset; CLIP's context is 77 then.
            cfg.ModelMaxLength = v > 1e6 ? 77 : (int)v;
        }
        if (root.TryGetProperty("added_tokens_decoder", out var added) && added.ValueKind == JsonValueKind.Object)
        {
            foreach (var prop in added.EnumerateObject())
            {
                if (!int.TryParse(prop.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
                    throw new ModelLoadException(path, $"added_tokens_decoder key '{prop.Name}' is not an integer id.");
                var content = TokenString(prop.Value, path, $"added_tokens_decoder.{prop.Name}")
                    ?? throw new ModelLoadException(path, $"added_tokens_decoder.{prop.Name} has no content.");
                cfg.AddedTokens.Add((id, content));
            }
        }
    }
}

/// <summary>
/// Result of <see cref="ClipTokenizer.EncodeForModel"/>: the fixed-length ids plus an explicit truncation report
/// (nothing is cut silently).
/// </summary>
/// <param name="Text">The input prompt.</param>
/// <param name="InputIds">ModelMaxLength ids: BOS, up to 75 BPE ids, EOS, padding.</param>
/// <param name="Ids">All BPE ids of the prompt (no BOS/EOS, not truncated).</param>
/// <param name="ModelMaxLength">Length of <paramref name="InputIds"/> (77).</param>
/// <param name="Truncated">Whether ids were cut.</param>
/// <param name="CutIds">The BPE ids that did not fit.</param>
/// <param name="CutTokens">Their token strings.</param>
/// <param name="CutText">Their decoded text (what the model will not see).</param>
public sealed record TokenizedText(string Text, int[] InputIds, int[] Ids, int ModelMaxLength, bool Truncated,
    int[] CutIds, IReadOnlyList<string> CutTokens, string CutText)
{
    /// <summary>Number of BPE ids of the prompt (before truncation, BOS/EOS not counted).</summary>
    public int TokenCount => Ids.Length;
    /// <summary>Number of BPE ids the model reads (at most ModelMaxLength − 2).</summary>
    public int KeptCount => Ids.Length - CutIds.Length;
    /// <summary>A sentence for the user when the prompt was truncated, else null.</summary>
    public string? TruncationWarning => Truncated
        ? $"The prompt has {TokenCount} tokens but the text encoder reads {ModelMaxLength - 2}; the last {CutIds.Length} were cut: \"{CutText}\". Shorten it or use long-prompt chunking (PromptWeighting.Tokenize)."
        : null;
    /// <summary>Input ids as int64 (what the TorchSharp text encoder takes).</summary>
    public long[] InputIdsAsLong() => InputIds.Select(i => (long)i).ToArray();
}
