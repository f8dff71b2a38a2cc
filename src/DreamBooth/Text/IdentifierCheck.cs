using System.Text;

namespace DreamBooth.Text;

/// <summary>How suitable a DreamBooth identifier is.</summary>
public enum IdentifierVerdict
{
    /// <summary>Splits into rare pieces that carry no strong meaning of their own.</summary>
    Good,
    /// <summary>Usable, but something deserves a look (see the reasons).</summary>
    Caution,
    /// <summary>The text encoder already has a strong meaning for it; pick another.</summary>
    Bad,
}

/// <summary>Options of <see cref="IdentifierCheck"/>.</summary>
public sealed record IdentifierCheckOptions
{
    /// <summary>
    /// A token counts as "common" when the merge that created it has a rank below this. CLIP's BPE merges were
    /// learned greedily from its training text, most frequent pair first, so a low rank means a frequent string:
    /// the first 10,000 merges (ids 512..10,511) hold the everyday English words and word pieces
    /// (e.g. cat 2368, photo 1125, dog 1929, heart 1936).
    /// </summary>
    public int CommonMergeRank { get; init; } = 10_000;

    /// <summary>Pieces with fewer letters than this are never treated as words (two-letter pieces are unavoidable).</summary>
    public int MinWordLetters { get; init; } = 3;

    /// <summary>How many alternatives to suggest.</summary>
    public int Alternatives { get; init; } = 5;

    /// <summary>Seed of the deterministic alternative generator.</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>Alternatives must split into at least this many and at most <see cref="MaxPieces"/> BPE pieces.</summary>
    public int MinPieces { get; init; } = 2;

    /// <inheritdoc cref="MinPieces"/>
    public int MaxPieces { get; init; } = 4;

    /// <summary>More pieces than this adds a note (each piece costs one of the 75 prompt tokens).</summary>
    public int ManyPiecesNote { get; init; } = 6;

    /// <summary>Throws with the option's name and the fix if a value is out of range.</summary>
    public void Validate()
    {
        if (CommonMergeRank < 0) throw new ArgumentOutOfRangeException(nameof(CommonMergeRank), CommonMergeRank, "CommonMergeRank must be ≥ 0 (default 10000).");
        if (MinWordLetters < 1) throw new ArgumentOutOfRangeException(nameof(MinWordLetters), MinWordLetters, "MinWordLetters must be ≥ 1 (default 3).");
        if (Alternatives < 0 || Alternatives > 100) throw new ArgumentOutOfRangeException(nameof(Alternatives), Alternatives, "Alternatives must be between 0 and 100.");
        if (MinPieces < 1 || MaxPieces < MinPieces) throw new ArgumentOutOfRangeException(nameof(MinPieces), MinPieces, "Need 1 ≤ MinPieces ≤ MaxPieces (defaults 2 and 4).");
    }
}

/// <summary>One BPE piece of an identifier.</summary>
/// <param name="Token">Vocabulary string (<c>&lt;/w&gt;</c> = end of word).</param>
/// <param name="Id">Token id.</param>
/// <param name="MergeRank">Rank of the merge that made it (null for single byte symbols).</param>
/// <param name="Letters">Number of letters in the piece.</param>
/// <param name="IsCommon">Low merge rank and enough letters to be a word or word piece the model knows well.</param>
public sealed record IdentifierPiece(string Token, int Id, int? MergeRank, int Letters, bool IsCommon);

/// <summary>Result of <see cref="IdentifierCheck.Check"/>.</summary>
public sealed record IdentifierReport(
    string Identifier,
    IReadOnlyList<IdentifierPiece> Pieces,
    IdentifierVerdict Verdict,
    IReadOnlyList<string> Reasons,
    IReadOnlyList<string> Alternatives)
{
    /// <summary>The verdict and its reasons in words.</summary>
    public string Explanation =>
        $"'{Identifier}' → {string.Join(" + ", Pieces.Select(p => $"{p.Token} ({p.Id})"))}: {Verdict}. {string.Join(" ", Reasons)}";
}

/// <summary>
/// Checks a DreamBooth rare identifier (Ruiz et al. 2023, §4.1: bind the subject to a token with a weak prior) against
/// the CLIP tokenizer: how it splits, whether any piece is a common word (low merge rank, see
/// <see cref="IdentifierCheckOptions.CommonMergeRank"/>) or a known-bad identifier, and suggests rare alternatives.
/// </summary>
public static class IdentifierCheck
{
    /// <summary>
    /// Identifiers known to carry a meaning in Stable Diffusion although they look rare. Small on purpose: only entries
    /// whose meaning is well documented.
    /// </summary>
    public static IReadOnlyDictionary<string, string> KnownBad { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["sks"] = "'sks' is the name of the SKS rifle: Stable Diffusion draws guns for it, and the DreamBooth example that made it popular leaks that prior into your subject.",
    };

    const string Consonants = "bcdfghjklmnpqrstvwxz";

    /// <summary>Checks <paramref name="identifier"/> and suggests alternatives.</summary>
    public static IdentifierReport Check(ClipTokenizer tok, string identifier, IdentifierCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tok);
        ArgumentNullException.ThrowIfNull(identifier);
        options ??= new IdentifierCheckOptions();
        options.Validate();

        var id = identifier.Trim();
        var reasons = new List<string>();
        var verdict = IdentifierVerdict.Good;
        void Raise(IdentifierVerdict v, string reason) { if (v > verdict) verdict = v; reasons.Add(reason); }

        var pieces = Pieces(tok, id, options);
        if (id.Length == 0) Raise(IdentifierVerdict.Bad, "The identifier is empty.");
        else if (id.Any(TextCleaner.IsPythonWhitespace)) Raise(IdentifierVerdict.Bad, "It contains spaces, so it is several words; use one word.");

        if (KnownBad.TryGetValue(id, out var why)) Raise(IdentifierVerdict.Bad, why);

        if (pieces.Count == 1 && id.Length > 0)
        {
            var p = pieces[0];
            if (p.IsCommon)
                Raise(IdentifierVerdict.Bad, $"It is a single common token (merge rank {p.MergeRank} < {options.CommonMergeRank}): CLIP knows it as a word, so the model has a strong prior for it.");
            else
                Raise(IdentifierVerdict.Caution, $"It is one whole token of its own (merge rank {p.MergeRank?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "n/a"}): rare, as the DreamBooth paper suggests, but a whole-word token was frequent enough to be learned, so it may still mean something (generate 'a photo of {id}' with the base model to see).");
        }
        else
        {
            var common = pieces.Where(p => p.IsCommon).ToList();
            if (common.Count > 0)
                Raise(IdentifierVerdict.Caution, $"Pieces {string.Join(", ", common.Select(p => $"'{p.Token}' (rank {p.MergeRank})"))} are common words or word pieces, so part of the identifier already means something.");
        }
        if (pieces.Count > options.ManyPiecesNote)
            reasons.Add($"It uses {pieces.Count} of the 75 prompt tokens.");
        if (verdict == IdentifierVerdict.Good)
            reasons.Insert(0, $"It splits into {pieces.Count} rare pieces, none a common word (no piece of ≥{options.MinWordLetters} letters has merge rank < {options.CommonMergeRank}), and it is not a known-bad identifier.");

        var alternatives = GenerateAlternatives(tok, options.Alternatives, options.Seed, options);
        return new IdentifierReport(id, pieces, verdict, reasons, alternatives);
    }

    static List<IdentifierPiece> Pieces(ClipTokenizer tok, string id, IdentifierCheckOptions o)
    {
        var list = new List<IdentifierPiece>();
        foreach (var tid in tok.Encode(id))
        {
            var token = tok.IdToToken(tid);
            var rank = tok.MergeRank(tid);
            int letters = token.Replace(ClipTokenizer.EndOfWord, "", StringComparison.Ordinal).Count(char.IsLetter);
            bool common = rank is int r && r < o.CommonMergeRank && letters >= o.MinWordLetters;
            list.Add(new IdentifierPiece(token, tid, rank, letters, common));
        }
        return list;
    }

    /// <summary>
    /// <paramref name="count"/> identifiers made deterministically from <paramref name="seed"/>: vowel-less consonant
    /// strings of 4–7 letters that split into MinPieces..MaxPieces pieces, none common, none known-bad, all distinct.
    /// </summary>
    public static IReadOnlyList<string> GenerateAlternatives(ClipTokenizer tok, int count, int seed, IdentifierCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tok);
        options ??= new IdentifierCheckOptions();
        options.Validate();
        var rng = new Random(seed);
        var found = new List<string>();
        var seen = new HashSet<string>();
        for (int attempt = 0; attempt < 20_000 && found.Count < count; attempt++)
        {
            int len = rng.Next(4, 8);
            var sb = new StringBuilder(len);
            for (int i = 0; i < len; i++) sb.Append(Consonants[rng.Next(Consonants.Length)]);
            var cand = sb.ToString();
            if (!seen.Add(cand) || KnownBad.ContainsKey(cand)) continue;
            var pieces = Pieces(tok, cand, options);
            if (pieces.Count < options.MinPieces || pieces.Count > options.MaxPieces) continue;
            if (pieces.Any(p => p.IsCommon)) continue;
            found.Add(cand);
        }
        return found;
    }
}
