using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DreamBooth.Imaging;
using DreamBooth.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.Imaging;

public class PngInfoTests
{
    sealed record RawChunk(string Type, byte[] Data, uint Crc);

    /// <summary>Independent chunk walker: signature, then length / type / data / CRC until IEND.</summary>
    static List<RawChunk> Chunks(byte[] png)
    {
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        var list = new List<RawChunk>();
        int pos = 8;
        while (pos < png.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            var type = Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, len).ToArray();
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            list.Add(new RawChunk(type, data, crc));
            pos += 12 + len;
            if (type == "IEND") break;
        }
        Assert.Equal(png.Length, pos);
        return list;
    }

    /// <summary>Bitwise CRC-32 (no table), over type + data, as in the PNG spec's sample code.</summary>
    static uint SlowCrc(string type, byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in Encoding.ASCII.GetBytes(type).Concat(data))
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    static Image<Rgb24> Gradient(int w, int h)
    {
        var img = new Image<Rgb24>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img[x, y] = new Rgb24((byte)(x * 17), (byte)(y * 29), (byte)(x ^ y));
        return img;
    }

    static readonly GenerationParameters Sample = new()
    {
        Prompt = "a photo of sks dog, café au lait colour",
        NegativePrompt = "blurry",
        Steps = 25,
        Sampler = "DDIM",
        CfgScale = 7.5,
        Seed = 99,
        Width = 16,
        Height = 8,
        ModelName = "tiny",
    };

    [Fact]
    public void Save_WritesLatin1TextAsTextChunk_ByteExact()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("out.png");
        using (var img = Gradient(16, 8))
            PngInfo.Save(img, path, Sample);

        var bytes = File.ReadAllBytes(path);
        var chunks = Chunks(bytes);
        Assert.Equal("IHDR", chunks[0].Type);
        Assert.Equal("IEND", chunks[^1].Type);
        foreach (var c in chunks)
            Assert.Equal(SlowCrc(c.Type, c.Data), c.Crc);

        var text = Assert.Single(chunks, c => c.Type is "tEXt" or "iTXt" or "zTXt");
        Assert.Equal("tEXt", text.Type); // 'é' is Latin-1, so PIL would write tEXt too
        var expected = Encoding.Latin1.GetBytes("parameters").Append((byte)0).Concat(Encoding.Latin1.GetBytes(Sample.ToInfotext())).ToArray();
        Assert.Equal(expected, text.Data);
        Assert.True(chunks.IndexOf(text) < chunks.FindIndex(c => c.Type == "IDAT"));

        // pixels survive and the file decodes with ImageSharp
        using var loaded = Image.Load<Rgb24>(path);
        Assert.Equal(new Rgb24(5 * 17, 3 * 29, 5 ^ 3), loaded[5, 3]);
        Assert.Equal(Sample, PngInfo.ReadParameters(path));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp")); // atomic save left no temp file
    }

    [Fact]
    public void Save_NonLatin1Text_UsesUncompressedITXt()
    {
        var p = Sample with { Prompt = "一只猫 🐱, watercolor" };
        using var img = Gradient(4, 4);
        var bytes = PngInfo.Encode(img, p.ToInfotext());
        var text = Assert.Single(Chunks(bytes), c => c.Type is "tEXt" or "iTXt" or "zTXt");
        Assert.Equal("iTXt", text.Type);
        // keyword \0, compression flag 0, method 0, empty language \0, empty translated keyword \0, UTF-8 text
        var expected = Encoding.Latin1.GetBytes("parameters").Concat(new byte[] { 0, 0, 0, 0, 0 })
            .Concat(Encoding.UTF8.GetBytes(p.ToInfotext())).ToArray();
        Assert.Equal(expected, text.Data);
        Assert.Equal(SlowCrc(text.Type, text.Data), text.Crc);

        using var dir = TestPaths.NewTempDir();
        File.WriteAllBytes(dir.File("u.png"), bytes);
        Assert.Equal(p, PngInfo.ReadParameters(dir.File("u.png")));
    }

    [Fact]
    public void ReadParameters_ReturnsNullWhenAbsent_AndReplacesOldChunkOnResave()
    {
        using var dir = TestPaths.NewTempDir();
        using var img = Gradient(4, 4);
        PngInfo.Save(img, dir.File("plain.png"), null);
        Assert.Null(PngInfo.ReadParameters(dir.File("plain.png")));
        Assert.Null(PngInfo.ReadParametersText(dir.File("plain.png")));

        var first = PngInfo.Encode(img, "old\nSteps: 1, Sampler: Euler, CFG scale: 1, Seed: 1, Size: 4x4");
        var second = PngInfo.SetTextChunk(first, "parameters", Sample.ToInfotext());
        Assert.Single(Chunks(second), c => c.Type == "tEXt");
        File.WriteAllBytes(dir.File("re.png"), second);
        Assert.Equal(Sample, PngInfo.ReadParameters(dir.File("re.png")));
        Assert.Throws<FileNotFoundException>(() => PngInfo.ReadParameters(dir.File("missing.png")));

        // An image loaded from an A1111-style PNG carries its old text in ImageSharp's metadata;
        // saving it with new parameters must still leave exactly one "parameters" chunk.
        using var reloaded = Image.Load<Rgb24>(dir.File("re.png"));
        var newer = Sample with { Seed = 7 };
        PngInfo.Save(reloaded, dir.File("re2.png"), newer);
        var texts = PngInfo.ReadTextChunks(File.ReadAllBytes(dir.File("re2.png")));
        Assert.Single(texts, t => t.Keyword == "parameters");
        Assert.Equal(newer, PngInfo.ReadParameters(dir.File("re2.png")));
    }

    static byte[] MakeChunk(string type, byte[] data)
    {
        var c = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(c, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(c, 4);
        data.CopyTo(c, 8);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(8 + data.Length), SlowCrc(type, data));
        return c;
    }

    static byte[] Deflate(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal)) z.Write(data);
        return ms.ToArray();
    }

    static byte[] InsertAfterIhdr(byte[] png, byte[] chunk)
    {
        int at = 8 + 12 + 13; // signature + IHDR (13 data bytes)
        return [.. png.AsSpan(0, at), .. chunk, .. png.AsSpan(at)];
    }

    [Fact]
    public void Reader_DecodesZTXtAndCompressedITXt()
    {
        using var img = Gradient(4, 4);
        var plain = PngInfo.Encode(img, null);
        var text = Sample.ToInfotext();

        var ztxt = MakeChunk("zTXt", [.. Encoding.Latin1.GetBytes("parameters"), 0, 0, .. Deflate(Encoding.Latin1.GetBytes(text))]);
        using var dir = TestPaths.NewTempDir();
        File.WriteAllBytes(dir.File("z.png"), InsertAfterIhdr(plain, ztxt));
        Assert.Equal(Sample, PngInfo.ReadParameters(dir.File("z.png")));

        var uni = Sample with { NegativePrompt = "ぼやけた" };
        var itxt = MakeChunk("iTXt", [.. Encoding.Latin1.GetBytes("parameters"), 0, 1, 0, .. "en"u8.ToArray(), 0, .. "Parameter"u8.ToArray(), 0,
            .. Deflate(Encoding.UTF8.GetBytes(uni.ToInfotext()))]);
        File.WriteAllBytes(dir.File("i.png"), InsertAfterIhdr(plain, itxt));
        Assert.Equal(uni, PngInfo.ReadParameters(dir.File("i.png")));

        // other keywords are listed but do not count as parameters
        var other = MakeChunk("tEXt", [.. "Software"u8.ToArray(), 0, .. "test"u8.ToArray()]);
        var withOther = InsertAfterIhdr(plain, other);
        var all = PngInfo.ReadTextChunks(withOther);
        Assert.Equal(new PngTextChunk("tEXt", "Software", "test"), Assert.Single(all));
    }

    [Fact]
    public void Reader_RejectsCorruptFiles_WithFileName()
    {
        using var img = Gradient(4, 4);
        var bytes = PngInfo.Encode(img, Sample.ToInfotext());
        using var dir = TestPaths.NewTempDir();
        var bad = (byte[])bytes.Clone();
        bad[8 + 12 + 13 + 8 + 3] ^= 0x20; // flip a bit inside the text chunk's keyword
        File.WriteAllBytes(dir.File("bad.png"), bad);
        var ex = Assert.Throws<InvalidDataException>(() => PngInfo.ReadParametersText(dir.File("bad.png")));
        Assert.Contains("bad.png", ex.Message);
        Assert.Contains("CRC", ex.Message);

        File.WriteAllBytes(dir.File("trunc.png"), bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => PngInfo.ReadParametersText(dir.File("trunc.png"))).Message);

        File.WriteAllText(dir.File("notpng.png"), "hello");
        Assert.Contains("signature", Assert.Throws<InvalidDataException>(() => PngInfo.ReadParametersText(dir.File("notpng.png"))).Message);
    }
}
