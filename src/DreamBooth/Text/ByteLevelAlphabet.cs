namespace DreamBooth.Text;

/// <summary>
/// GPT-2/CLIP <c>bytes_to_unicode</c>: printable bytes '!'..'~', '¡'..'¬', '®'..'ÿ' map to themselves, the other
/// 68 bytes to U+0100.. in byte order. Used for decoding ids back to text (encoding is done by the library's
/// byte-level mode, which uses the same table).
/// </summary>
public static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = Build();
    static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(x => x.c, x => x.Item2);

    static char[] Build()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    /// <summary>The symbol that stands for <paramref name="b"/>.</summary>
    public static char ToChar(byte b) => ByteToChar[b];

    /// <summary>The byte a symbol stands for, if it is one of the 256.</summary>
    public static bool TryGetByte(char c, out byte b) => CharToByte.TryGetValue(c, out b);

    /// <summary>
    /// The 256 symbols in CLIP's vocabulary order (ids 0..255): printable ranges first, then the remapped bytes.
    /// </summary>
    public static IReadOnlyList<char> VocabularyOrder()
    {
        var printable = Enumerable.Range(0, 256).Where(b => ByteToChar[b] == (char)b).Select(b => (char)b);
        var remapped = Enumerable.Range(0, 256).Where(b => ByteToChar[b] != (char)b).Select(b => ByteToChar[b]);
        return [.. printable, .. remapped];
    }
}
