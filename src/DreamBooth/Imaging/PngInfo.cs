using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DreamBooth.Loading;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Imaging;

/// <summary>One PNG text chunk: its type ("tEXt", "zTXt" or "iTXt"), keyword and decoded text.</summary>
public sealed record PngTextChunk(string ChunkType, string Keyword, string Text);

/// <summary>
/// PNG files with AUTOMATIC1111's generation metadata. A1111 stores the infotext under the keyword "parameters"
/// with PIL's <c>PngInfo.add_text</c>: an uncompressed <c>tEXt</c> chunk when the text is Latin-1 encodable,
/// otherwise an uncompressed <c>iTXt</c> chunk (UTF-8, empty language tag and translated keyword). We write the
/// same chunk ourselves, right after IHDR, so A1111's "PNG Info" tab (and PIL's <c>image.info</c>) reads it.
/// The reader accepts tEXt, zTXt and iTXt (compressed or not), checks CRCs, and like PIL lets a later chunk with
/// the same keyword win.
/// </summary>
public static class PngInfo
{
    /// <summary>The keyword A1111 uses for the infotext.</summary>
    public const string ParametersKeyword = "parameters";

    static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Saves <paramref name="image"/> as an 8-bit RGB PNG with the infotext of <paramref name="parameters"/>
    /// (omitted when null). The write is atomic (temp file + rename).</summary>
    public static void Save(Image<Rgb24> image, string path, GenerationParameters? parameters) =>
        SaveWithText(image, path, parameters?.ToInfotext());

    /// <summary>Saves with a raw "parameters" text (or none when null); atomic.</summary>
    public static void SaveWithText(Image<Rgb24> image, string path, string? parametersText)
    {
        ArgumentNullException.ThrowIfNull(path);
        var bytes = Encode(image, parametersText);
        AtomicFile.WriteAllBytes(path, bytes);
    }

    /// <summary>Encodes a PNG in memory with an optional "parameters" text chunk.</summary>
    public static byte[] Encode(Image<Rgb24> image, string? parametersText)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var ms = new MemoryStream();
        image.SaveAsPng(ms, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8 });
        var png = ms.ToArray();
        return parametersText == null ? RemoveTextChunks(png, ParametersKeyword) : SetTextChunk(png, ParametersKeyword, parametersText);
    }

    /// <summary>Reads the "parameters" infotext of a PNG file and parses it; null when the file has none.</summary>
    public static GenerationParameters? ReadParameters(string path)
    {
        var text = ReadParametersText(path);
        if (text == null) return null;
        try
        {
            return GenerationParameters.Parse(text);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{path}: the PNG \"parameters\" text is not a valid A1111 infotext: {e.Message}", e);
        }
    }

    /// <summary>The raw "parameters" text of a PNG file, or null when absent.</summary>
    public static string? ReadParametersText(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"PNG file not found: {path}", path);
        var bytes = File.ReadAllBytes(path);
        string? found = null;
        foreach (var c in ReadTextChunks(bytes, path))
            if (c.Keyword == ParametersKeyword) found = c.Text; // later wins, like PIL's image.info
        return found;
    }

    /// <summary>All text chunks of a PNG, decoded. <paramref name="sourceName"/> is used in error messages.</summary>
    public static IReadOnlyList<PngTextChunk> ReadTextChunks(byte[] png, string sourceName = "PNG data")
    {
        var result = new List<PngTextChunk>();
        foreach (var chunk in EnumerateChunks(png, sourceName))
        {
            var data = png.AsSpan(chunk.DataOffset, chunk.Length);
            switch (chunk.Type)
            {
                case "tEXt":
                    {
                        int z = data.IndexOf((byte)0);
                        if (z < 1) throw Bad(sourceName, "tEXt chunk without a keyword terminator");
                        result.Add(new("tEXt", Encoding.Latin1.GetString(data[..z]), Encoding.Latin1.GetString(data[(z + 1)..])));
                        break;
                    }
                case "zTXt":
                    {
                        int z = data.IndexOf((byte)0);
                        if (z < 1 || z + 1 >= data.Length) throw Bad(sourceName, "malformed zTXt chunk");
                        if (data[z + 1] != 0) throw Bad(sourceName, $"zTXt chunk uses unknown compression method {data[z + 1]}");
                        var text = Inflate(data[(z + 2)..].ToArray(), sourceName);
                        result.Add(new("zTXt", Encoding.Latin1.GetString(data[..z]), Encoding.Latin1.GetString(text)));
                        break;
                    }
                case "iTXt":
                    {
                        int z = data.IndexOf((byte)0);
                        if (z < 1 || z + 2 >= data.Length) throw Bad(sourceName, "malformed iTXt chunk");
                        var keyword = Encoding.Latin1.GetString(data[..z]);
                        byte flag = data[z + 1], method = data[z + 2];
                        var rest = data[(z + 3)..];
                        int l = rest.IndexOf((byte)0);
                        if (l < 0) throw Bad(sourceName, "iTXt chunk without a language tag terminator");
                        rest = rest[(l + 1)..];
                        int t = rest.IndexOf((byte)0);
                        if (t < 0) throw Bad(sourceName, "iTXt chunk without a translated keyword terminator");
                        var body = rest[(t + 1)..].ToArray();
                        if (flag == 1)
                        {
                            if (method != 0) throw Bad(sourceName, $"iTXt chunk uses unknown compression method {method}");
                            body = Inflate(body, sourceName);
                        }
                        result.Add(new("iTXt", keyword, Encoding.UTF8.GetString(body)));
                        break;
                    }
            }
        }
        return result;
    }

    /// <summary>Builds one text chunk (length, type, data, CRC) exactly as PIL's <c>PngInfo.add_text(key, value)</c>:
    /// tEXt when <paramref name="text"/> is Latin-1 encodable, else iTXt with UTF-8 text.</summary>
    public static byte[] BuildTextChunk(string keyword, string text)
    {
        ArgumentNullException.ThrowIfNull(keyword);
        ArgumentNullException.ThrowIfNull(text);
        if (keyword.Length is < 1 or > 79 || keyword.Any(c => c < 0x20 || c > 0xFF || c == 0x7F))
            throw new ArgumentException($"PNG text keyword \"{keyword}\" must be 1-79 printable Latin-1 characters.", nameof(keyword));
        var key = Encoding.Latin1.GetBytes(keyword);
        byte[] data;
        string type;
        if (text.All(c => c <= 0xFF))
        {
            type = "tEXt";
            data = [.. key, 0, .. Encoding.Latin1.GetBytes(text)];
        }
        else
        {
            type = "iTXt";
            // keyword \0, compression flag 0, compression method 0, language "" \0, translated keyword "" \0, UTF-8 text
            data = [.. key, 0, 0, 0, 0, 0, .. new UTF8Encoding(false, true).GetBytes(text)];
        }
        return BuildChunk(type, data);
    }

    /// <summary>Replaces (or adds) the text chunk with <paramref name="keyword"/>: old tEXt/zTXt/iTXt chunks with that
    /// keyword are removed and the new one goes right after IHDR.</summary>
    public static byte[] SetTextChunk(byte[] png, string keyword, string text)
    {
        var cleaned = RemoveTextChunks(png, keyword);
        var chunk = BuildTextChunk(keyword, text);
        var ihdr = EnumerateChunks(cleaned, "PNG data").First();
        if (ihdr.Type != "IHDR") throw Bad("PNG data", "first chunk is not IHDR");
        int insertAt = ihdr.DataOffset + ihdr.Length + 4;
        return [.. cleaned.AsSpan(0, insertAt), .. chunk, .. cleaned.AsSpan(insertAt)];
    }

    static byte[] RemoveTextChunks(byte[] png, string keyword)
    {
        using var ms = new MemoryStream(png.Length);
        ms.Write(Signature);
        foreach (var c in EnumerateChunks(png, "PNG data"))
        {
            if (c.Type is "tEXt" or "zTXt" or "iTXt")
            {
                var data = png.AsSpan(c.DataOffset, c.Length);
                int z = data.IndexOf((byte)0);
                if (z > 0 && Encoding.Latin1.GetString(data[..z]) == keyword)
                    continue;
            }
            ms.Write(png, c.DataOffset - 8, c.Length + 12);
        }
        return ms.ToArray();
    }

    internal readonly record struct ChunkInfo(string Type, int DataOffset, int Length);

    /// <summary>Walks the chunks of a PNG, checking the signature, lengths and CRCs; stops after IEND.</summary>
    internal static IEnumerable<ChunkInfo> EnumerateChunks(byte[] png, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(png);
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(Signature))
            throw Bad(sourceName, "not a PNG file (bad signature)");
        int pos = 8;
        while (true)
        {
            if (pos + 12 > png.Length) throw Bad(sourceName, "file ends before the IEND chunk (truncated)");
            uint len = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            if (len > int.MaxValue || pos + 12 + (long)len > png.Length)
                throw Bad(sourceName, $"chunk at byte {pos} claims {len} bytes, past the end of the file (truncated)");
            var type = Encoding.ASCII.GetString(png, pos + 4, 4);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + (int)len));
            uint actual = Crc32(png.AsSpan(pos + 4, 4 + (int)len));
            if (crc != actual)
                throw Bad(sourceName, $"CRC mismatch in {type} chunk at byte {pos} (file is corrupt)");
            yield return new ChunkInfo(type, pos + 8, (int)len);
            pos += 12 + (int)len;
            if (type == "IEND") yield break;
        }
    }

    static byte[] BuildChunk(string type, byte[] data)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, chunk.AsSpan(4, 4));
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }

    static byte[] Inflate(byte[] data, string sourceName)
    {
        try
        {
            using var input = new MemoryStream(data);
            using var z = new ZLibStream(input, CompressionMode.Decompress);
            using var output = new MemoryStream();
            z.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw Bad(sourceName, $"compressed text chunk cannot be decompressed ({e.Message})");
        }
    }

    static InvalidDataException Bad(string source, string problem) => new($"{source}: {problem}.");

    static readonly uint[] CrcTable = MakeCrcTable();

    static uint[] MakeCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }

    /// <summary>CRC-32 as defined by the PNG specification (ISO 3309 polynomial), over chunk type + data.</summary>
    internal static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in bytes)
            c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
