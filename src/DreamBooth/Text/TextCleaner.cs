using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace DreamBooth.Text;

/// <summary>
/// The text clean-up that transformers' slow <c>CLIPTokenizer</c> applies before BPE when <c>ftfy</c> is installed:
/// <c>whitespace_clean(ftfy.fix_text(text)).lower()</c>. <see cref="FixText"/> reimplements the parts of
/// ftfy 6.3 <c>fix_text</c> (default config) that change prompts: HTML-entity unescape (repeated, skipped once a
/// line contains '&lt;'), UTF-8/Windows-1252 mojibake repair, C1 controls, Latin ligatures, full/half-width forms,
/// curly quotes, line breaks, terminal escapes, control characters and NFC, applied per line until nothing changes.
/// Not reimplemented (documented gaps): ftfy's statistical "badness" score (we repair only sequences that decode as
/// valid UTF-8 from Windows-1252/Latin-1 bytes), its other single-byte codecs (MacRoman, cp437, Windows-1250/1251)
/// and restore_byte_a0 / replace_lossy_sequences.
/// </summary>
public static partial class TextCleaner
{
    /// <summary>ftfy-compatible clean-up, then Python's <c>re.sub(r"\s+", " ")</c>, <c>strip()</c> and <c>lower()</c>.</summary>
    public static string CleanForClip(string text)
    {
        var fixedText = FixText(text);
        return PythonLower(CollapseWhitespace(fixedText));
    }

    /// <summary>Python <c>re.sub(r"\s+", " ", s).strip()</c> with Python's definition of whitespace.</summary>
    public static string CollapseWhitespace(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool pendingSpace = false;
        foreach (var c in s)
        {
            if (IsPythonWhitespace(c))
            {
                pendingSpace = sb.Length > 0;
                continue;
            }
            if (pendingSpace) sb.Append(' ');
            pendingSpace = false;
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Python <c>str.isspace()</c>: .NET whitespace plus the separators U+001C..U+001F.</summary>
    internal static bool IsPythonWhitespace(char c) => char.IsWhiteSpace(c) || (c >= '\u001c' && c <= '\u001f');

    /// <summary>Python <c>str.lower()</c>: full case mapping of U+0130 and the Greek final-sigma rule on top of invariant lower-casing.</summary>
    public static string PythonLower(string s)
    {
        bool special = false;
        foreach (var c in s) if (c == '\u0130' || c == '\u03a3') { special = true; break; }
        if (!special) return s.ToLowerInvariant();
        var sb = new StringBuilder(s.Length + 4);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\u0130') sb.Append("i\u0307");
            else if (c == '\u03a3')
            {
                bool before = i > 0 && char.IsLetter(s[i - 1]);
                bool after = i + 1 < s.Length && char.IsLetter(s[i + 1]);
                sb.Append(before && !after ? '\u03c2' : '\u03c3');
            }
            else sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    /// <summary>ftfy 6.3 <c>fix_text</c> with its default configuration (see the type's remarks for what is covered).</summary>
    public static string FixText(string text)
    {
        if (string.IsNullOrEmpty(text) || IsPlainAscii(text)) return text;
        var outText = new StringBuilder(text.Length);
        bool unescapeHtml = true; // "auto": switched off for this and all following lines once a line contains '<'
        int pos = 0;
        while (pos < text.Length)
        {
            int nl = text.IndexOf('\n', pos);
            int end = nl < 0 ? text.Length : nl + 1;
            var segment = text[pos..end];
            if (unescapeHtml && segment.Contains('<')) unescapeHtml = false;
            outText.Append(FixSegment(segment, unescapeHtml));
            pos = end;
        }
        return outText.ToString();
    }

    /// <summary>Printable ASCII, tab and newline without '&amp;': no ftfy fix can change it.</summary>
    static bool IsPlainAscii(string text)
    {
        foreach (var c in text)
            if (c > '~' || c == '&' || (c < ' ' && c != '\t' && c != '\n')) return false;
        return true;
    }

    static string FixSegment(string text, bool unescapeHtml)
    {
        for (int guard = 0; guard < 32; guard++)
        {
            var orig = text;
            if (unescapeHtml) text = UnescapeHtml(text);
            text = FixEncoding(text);
            text = FixC1Controls(text);
            text = FixLatinLigatures(text);
            text = FixCharacterWidth(text);
            text = UncurlQuotes(text);
            text = FixLineBreaks(text);
            text = RemoveTerminalEscapes(text);
            text = RemoveControlChars(text);
            text = text.Normalize(NormalizationForm.FormC);
            if (text == orig) break;
        }
        return text;
    }

    // ---- HTML entities (ftfy.fixes.unescape_html) ----
    [GeneratedRegex("&#?[0-9A-Za-z]{1,24};")]
    private static partial Regex HtmlEntityRegex();

    internal static string UnescapeHtml(string text)
    {
        if (!text.Contains('&')) return text;
        return HtmlEntityRegex().Replace(text, m => UnescapeEntity(m.Value));
    }

    static string UnescapeEntity(string entity)
    {
        if (entity.StartsWith("&#", StringComparison.Ordinal))
        {
            var body = entity[2..^1];
            bool hex = body.Length > 1 && (body[0] == 'x' || body[0] == 'X');
            var digits = hex ? body[1..] : body;
            bool allDigits = digits.Length > 0 && digits.All(ch => hex ? Uri.IsHexDigit(ch) : ch is >= '0' and <= '9');
            // Python's html.unescape must consume the whole reference, else ftfy keeps the text as it was.
            if (!allDigits) return entity;
            if (!long.TryParse(digits, hex ? NumberStyles.HexNumber : NumberStyles.None, CultureInfo.InvariantCulture, out var cp) || cp > 0x10FFFF)
                return "\uFFFD";
            return PythonNumericCharRef((int)cp);
        }
        var decoded = WebUtility.HtmlDecode(entity);
        if (decoded != entity) return decoded;
        // ftfy also decodes ALL-CAPS spellings of lower-case entity names (text upper-cased in ASCII): &EACUTE; -> É.
        var name = entity[1..^1];
        if (name.Length > 0 && name.All(ch => !char.IsLower(ch)))
        {
            var lower = WebUtility.HtmlDecode("&" + name.ToLowerInvariant() + ";");
            if (lower != "&" + name.ToLowerInvariant() + ";") return lower.ToUpperInvariant();
        }
        return entity;
    }

    /// <summary>Python html.unescape for &amp;#NNN; (HTML5 rules: C1 range read as Windows-1252, invalid -> U+FFFD).</summary>
    static string PythonNumericCharRef(int cp)
    {
        if (cp == 0) return "\uFFFD";
        if (cp == 0x0d) return "\r";
        if (cp >= 0x80 && cp <= 0x9f)
            return Cp1252Decode.TryGetValue((byte)cp, out var ch) ? ch.ToString() : ((char)cp).ToString();
        if (cp >= 0xD800 && cp <= 0xDFFF) return "\uFFFD";
        // html._invalid_codepoints decode to nothing
        if ((cp >= 0x1 && cp <= 0x8) || cp == 0xb || (cp >= 0xe && cp <= 0x1f) || cp == 0x7f ||
            (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xFFFE) == 0xFFFE)
            return "";
        return char.ConvertFromUtf32(cp);
    }

    // ---- Windows-1252 tables ----
    static readonly Dictionary<byte, char> Cp1252Decode = BuildCp1252();
    static readonly Dictionary<char, byte> SloppyCp1252Encode = BuildSloppyEncode();

    static Dictionary<byte, char> BuildCp1252()
    {
        // Bytes 0x80..0x9F of Windows-1252; 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined there.
        const string hi = "\u20AC\0\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\0\u017D\0" +
                          "\0\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\0\u017E\u0178";
        var d = new Dictionary<byte, char>();
        for (int i = 0; i < 32; i++) if (hi[i] != '\0') d[(byte)(0x80 + i)] = hi[i];
        return d;
    }

    static Dictionary<char, byte> BuildSloppyEncode()
    {
        // ftfy's "sloppy-windows-1252": Latin-1 for 0x00-0x7F and 0xA0-0xFF, Windows-1252 for 0x80-0x9F,
        // and the five undefined bytes map to the C1 control characters of the same number.
        var d = new Dictionary<char, byte>();
        for (int b = 0; b < 256; b++)
        {
            if (b >= 0x80 && b <= 0x9f)
                d[Cp1252Decode.TryGetValue((byte)b, out var ch) ? ch : (char)b] = (byte)b;
            else d[(char)b] = (byte)b;
        }
        return d;
    }

    // ---- mojibake (ftfy fix_encoding + decode_inconsistent_utf8, simplified) ----
    static readonly UTF8Encoding StrictUtf8 = new(false, true);

    internal static string FixEncoding(string text)
    {
        bool anyHigh = false;
        foreach (var c in text) if (c >= '\u0080') { anyHigh = true; break; }
        if (!anyHigh) return text;

        // 1. The whole segment was UTF-8 read as Windows-1252 (or Latin-1).
        if (TryReencode(text, out var whole) && whole != text) return whole;

        // 2. Parts of it: runs of characters whose Windows-1252 bytes form a valid multi-byte UTF-8 sequence.
        var sb = new StringBuilder(text.Length);
        int i = 0;
        bool changed = false;
        while (i < text.Length)
        {
            int len = Utf8LeadLength(text[i]);
            if (len > 1 && i + len <= text.Length)
            {
                var bytes = new byte[len];
                bool ok = true;
                for (int k = 0; k < len && ok; k++)
                {
                    if (!SloppyCp1252Encode.TryGetValue(text[i + k], out bytes[k])) ok = false;
                    else if (k > 0 && (bytes[k] < 0x80 || bytes[k] > 0xBF)) ok = false;
                }
                if (ok)
                {
                    try
                    {
                        var dec = StrictUtf8.GetString(bytes);
                        sb.Append(dec);
                        i += len;
                        changed = true;
                        continue;
                    }
                    catch (DecoderFallbackException) { }
                }
            }
            sb.Append(text[i]);
            i++;
        }
        return changed ? sb.ToString() : text;
    }

    static int Utf8LeadLength(char c)
    {
        if (!SloppyCp1252Encode.TryGetValue(c, out var b)) return 0;
        if (b >= 0xC2 && b <= 0xDF) return 2;
        if (b >= 0xE0 && b <= 0xEF) return 3;
        if (b >= 0xF0 && b <= 0xF4) return 4;
        return 0;
    }

    static bool TryReencode(string text, out string result)
    {
        result = text;
        var bytes = new byte[text.Length];
        bool hasMultiByte = false;
        for (int i = 0; i < text.Length; i++)
        {
            if (!SloppyCp1252Encode.TryGetValue(text[i], out bytes[i])) return false;
            if (bytes[i] >= 0xC2 && bytes[i] <= 0xF4) hasMultiByte = true;
        }
        if (!hasMultiByte) return false;
        try { result = StrictUtf8.GetString(bytes); return true; }
        catch (DecoderFallbackException) { return false; }
    }

    // ---- small fixes ----
    internal static string FixC1Controls(string text)
    {
        if (!text.Any(c => c >= '\u0080' && c <= '\u009f')) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
            sb.Append(c >= '\u0080' && c <= '\u009f' && Cp1252Decode.TryGetValue((byte)c, out var d) ? d : c);
        return sb.ToString();
    }

    static readonly Dictionary<char, string> Ligatures = new()
    {
        ['\u0132'] = "IJ", ['\u0133'] = "ij", ['\u0149'] = "\u02bcn",
        ['\u01f1'] = "DZ", ['\u01f2'] = "Dz", ['\u01f3'] = "dz",
        ['\u01c4'] = "D\u017d", ['\u01c5'] = "D\u017e", ['\u01c6'] = "d\u017e",
        ['\u01c7'] = "LJ", ['\u01c8'] = "Lj", ['\u01c9'] = "lj",
        ['\u01ca'] = "NJ", ['\u01cb'] = "Nj", ['\u01cc'] = "nj",
        ['\ufb00'] = "ff", ['\ufb01'] = "fi", ['\ufb02'] = "fl", ['\ufb03'] = "ffi", ['\ufb04'] = "ffl",
        ['\ufb05'] = "\u017ft", ['\ufb06'] = "st",
    };

    internal static string FixLatinLigatures(string text) => MapChars(text, c => Ligatures.TryGetValue(c, out var r) ? r : null);

    static readonly Lazy<Dictionary<char, string>> WidthMap = new(() =>
    {
        var d = new Dictionary<char, string> { ['\u3000'] = " " };
        for (int i = 0xFF01; i < 0xFFF0; i++)
        {
            var ch = ((char)i).ToString();
            var alt = ch.Normalize(NormalizationForm.FormKC);
            if (alt != ch) d[(char)i] = alt;
        }
        return d;
    });

    internal static string FixCharacterWidth(string text) =>
        MapChars(text, c => (c == '\u3000' || c >= '\uFF01') && WidthMap.Value.TryGetValue(c, out var r) ? r : null);

    internal static string UncurlQuotes(string text) => MapChars(text, c =>
        c == '\u02bc' || (c >= '\u2018' && c <= '\u201b') ? "'" : c >= '\u201c' && c <= '\u201f' ? "\"" : null);

    internal static string FixLineBreaks(string text) =>
        text.Replace("\r\n", "\n").Replace('\r', '\n').Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');

    [GeneratedRegex("\u001b\\[((?:\\d|;)*)([a-zA-Z])")]
    private static partial Regex AnsiRegex();

    internal static string RemoveTerminalEscapes(string text) => text.Contains('\u001b') ? AnsiRegex().Replace(text, "") : text;

    static bool IsRemovedControl(char c) =>
        c <= '\u0008' || c == '\u000b' || (c >= '\u000e' && c <= '\u001f') || c == '\u007f' ||
        (c >= '\u206a' && c <= '\u206f') || c == '\ufeff' || (c >= '\ufff9' && c <= '\ufffc');

    internal static string RemoveControlChars(string text) => MapChars(text, c => IsRemovedControl(c) ? "" : null);

    static string MapChars(string text, Func<char, string?> map)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            var r = map(text[i]);
            if (r is null) { sb?.Append(text[i]); continue; }
            if (sb is null) { sb = new StringBuilder(text.Length + 8); sb.Append(text, 0, i); }
            sb.Append(r);
        }
        return sb?.ToString() ?? text;
    }
}
