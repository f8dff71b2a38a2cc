using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace DreamBooth.Text;

/// <summary>
/// CLIP's pre-tokenisation (openai/CLIP <c>simple_tokenizer.py</c>, transformers <c>CLIPTokenizer</c>) as a
/// Microsoft.ML.Tokenizers <see cref="PreTokenizer"/>: at each position the first matching alternative of
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// (case-insensitive), whitespace skipped. Written as a scanner over Unicode scalar values rather than a .NET
/// <see cref="System.Text.RegularExpressions.Regex"/> because .NET's <c>\p{L}</c> sees UTF-16 code units, so
/// letters and digits outside the BMP (e.g. CJK Extension B) would be classed as symbols, unlike Python's regex.
/// Input is expected already cleaned and lower-cased (<see cref="TextCleaner.CleanForClip"/>).
/// </summary>
public sealed class ClipPreTokenizer : PreTokenizer
{
    /// <summary>Shared instance (stateless).</summary>
    public static ClipPreTokenizer Instance { get; } = new();

    static readonly string[] Specials = ["<|startoftext|>", "<|endoftext|>"];
    static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <inheritdoc />
    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text.AsSpan());

    /// <inheritdoc />
    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text);

    enum Kind { Space, Letter, Number, Other }

    static Kind Classify(ReadOnlySpan<char> s, int i, out int width)
    {
        if (Rune.DecodeFromUtf16(s[i..], out var rune, out width) != System.Buffers.OperationStatus.Done)
        {
            width = 1;
            return Kind.Other; // lone surrogate
        }
        if (Rune.IsWhiteSpace(rune)) return Kind.Space;
        switch (Rune.GetUnicodeCategory(rune))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Kind.Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Kind.Number;
            default:
                return Kind.Other;
        }
    }

    /// <summary>The (offset, length) pieces of <paramref name="text"/>, in order.</summary>
    public static List<(int Offset, int Length)> Split(ReadOnlySpan<char> text)
    {
        var result = new List<(int, int)>();
        int i = 0;
        while (i < text.Length)
        {
            int matched = MatchSpecialOrContraction(text, i);
            if (matched > 0)
            {
                result.Add((i, matched));
                i += matched;
                continue;
            }
            var kind = Classify(text, i, out int w);
            if (kind == Kind.Space) { i += w; continue; }
            if (kind == Kind.Number) { result.Add((i, w)); i += w; continue; }
            int start = i;
            i += w;
            while (i < text.Length)
            {
                var k = Classify(text, i, out int w2);
                if (k != kind) break;
                i += w2;
            }
            result.Add((start, i - start));
        }
        return result;
    }

    static int MatchSpecialOrContraction(ReadOnlySpan<char> text, int i)
    {
        var rest = text[i..];
        if (rest[0] == '<')
            foreach (var s in Specials)
                if (rest.StartsWith(s, StringComparison.OrdinalIgnoreCase)) return s.Length;
        if (rest[0] == '\'')
            foreach (var c in Contractions)
                if (rest.StartsWith(c, StringComparison.OrdinalIgnoreCase)) return c.Length;
        return 0;
    }
}
