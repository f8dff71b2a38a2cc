using System.Buffers.Binary;
using System.IO.Compression;
using DreamBooth.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.Imaging.Import;

/// <summary>Images generated in code for the import tests.</summary>
internal static class ImportTestImages
{
    /// <summary>Random coloured rectangles plus per-pixel noise: detailed, sharp, and different for each seed.</summary>
    public static Image<Rgb24> Detailed(int width, int height, int seed)
    {
        var rng = new Random(seed);
        var img = new Image<Rgb24>(width, height, new Rgb24((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
        for (int k = 0; k < 40; k++)
        {
            int x0 = rng.Next(width), y0 = rng.Next(height);
            int rw = rng.Next(width / 10 + 1, width / 2 + 2), rh = rng.Next(height / 10 + 1, height / 2 + 2);
            var c = new Rgb24((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256));
            for (int y = y0; y < Math.Min(height, y0 + rh); y++)
                for (int x = x0; x < Math.Min(width, x0 + rw); x++) img[x, y] = c;
        }
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var p = img[x, y];
                int n = rng.Next(-25, 26);
                img[x, y] = new Rgb24(Clamp(p.R + n), Clamp(p.G + n), Clamp(p.B + n));
            }
        return img;
    }

    public static Image<Rgb24> Solid(int width, int height, Rgb24 colour) => new(width, height, colour);

    static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);

    public static string SaveJpeg(Image img, string path)
    {
        img.Save(path, new JpegEncoder { Quality = 92 });
        return path;
    }

    public static string SavePng(Image img, string path)
    {
        img.SaveAsPng(path);
        return path;
    }

    public static byte[] JpegBytes(Image img)
    {
        using var ms = new MemoryStream();
        img.Save(ms, new JpegEncoder { Quality = 92 });
        return ms.ToArray();
    }

    public static byte[] PngBytes(Image img)
    {
        using var ms = new MemoryStream();
        img.SaveAsPng(ms);
        return ms.ToArray();
    }

    /// <summary>A PNG whose IHDR claims <paramref name="width"/>×<paramref name="height"/> RGB, with correct CRCs, a
    /// small real zlib IDAT (rows of zeros, far fewer than claimed) and IEND — a decompression-bomb header.</summary>
    public static byte[] PngClaiming(int width, int height)
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        WriteChunk(ms, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var zl = new ZLibStream(z, CompressionLevel.SmallestSize, leaveOpen: true))
                zl.Write(new byte[64 * 1024]);
            WriteChunk(ms, "IDAT", z.ToArray());
        }
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    static void WriteChunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var typeAndData = new byte[4 + data.Length];
        System.Text.Encoding.ASCII.GetBytes(type).CopyTo(typeAndData, 0);
        data.CopyTo(typeAndData, 4);
        s.Write(typeAndData);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, ReferenceCrc32(typeAndData));
        s.Write(crc);
    }

    /// <summary>Bitwise CRC-32 (independent of the code under test).</summary>
    public static uint ReferenceCrc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    public static string Fixture(string name) =>
        Path.Combine(TestPaths.RepoRoot, "tests", "DreamBooth.Tests", "Fixtures", "images", name);

    public static Rgb24 Pixel(string pngPath, int x, int y)
    {
        using var img = Image.Load<Rgb24>(pngPath);
        return img[x, y];
    }
}
