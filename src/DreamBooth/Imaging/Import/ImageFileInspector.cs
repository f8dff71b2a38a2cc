using System.Buffers.Binary;

namespace DreamBooth.Imaging.Import;

/// <summary>The container formats the importer accepts, recognised by their magic bytes (never by the file extension).</summary>
public enum ImageContainer
{
    /// <summary>Not one of the accepted formats.</summary>
    Unknown,
    Jpeg,
    Png,
    Gif,
    Webp,
    Bmp,
}

/// <summary>What a cheap structural walk of the file's bytes found, before any pixel decoding.</summary>
/// <param name="Container">The format recognised from the magic bytes.</param>
/// <param name="Complete">False when the file ends before its end marker (JPEG EOI, PNG IEND, GIF trailer, RIFF size, BMP pixel data).</param>
/// <param name="Problem">Why the file is incomplete or corrupt (null when it is fine).</param>
/// <param name="FrameCount">Frames found (GIF image descriptors, WebP ANMF chunks, PNG acTL frame count); 1 for still images.</param>
/// <param name="JpegComponents">Number of colour components in a JPEG frame header (4 = CMYK or YCCK), 0 otherwise.</param>
/// <param name="AdobeTransform">The JPEG Adobe APP14 transform byte (0 = CMYK/RGB, 1 = YCbCr, 2 = YCCK), -1 when absent.</param>
public sealed record ImageFileInfo(
    ImageContainer Container,
    bool Complete,
    string? Problem,
    int FrameCount,
    int JpegComponents,
    int AdobeTransform)
{
    /// <summary>True for GIFs, WebPs and APNGs with more than one frame.</summary>
    public bool IsAnimated => FrameCount > 1;

    /// <summary>True for 4-component (CMYK / YCCK) JPEGs, which the importer converts to RGB and notes in the report.</summary>
    public bool IsCmykJpeg => Container == ImageContainer.Jpeg && JpegComponents == 4;
}

/// <summary>
/// Recognises image files by content and walks their structure without decoding pixels, so that truncated or corrupt
/// files are refused even where a lenient decoder would fill the missing part with grey (ImageSharp pads truncated JPEGs).
/// </summary>
public static class ImageFileInspector
{
    /// <summary>The format named by the first bytes, or <see cref="ImageContainer.Unknown"/>.</summary>
    public static ImageContainer Sniff(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageContainer.Jpeg;
        if (data.Length >= 8 && data[..8].SequenceEqual(PngSignature)) return ImageContainer.Png;
        if (data.Length >= 6 && data[0] == 'G' && data[1] == 'I' && data[2] == 'F' && data[3] == '8'
            && (data[4] == '7' || data[4] == '9') && data[5] == 'a') return ImageContainer.Gif;
        if (data.Length >= 12 && data[0] == 'R' && data[1] == 'I' && data[2] == 'F' && data[3] == 'F'
            && data[8] == 'W' && data[9] == 'E' && data[10] == 'B' && data[11] == 'P') return ImageContainer.Webp;
        if (data.Length >= 14 && data[0] == 'B' && data[1] == 'M') return ImageContainer.Bmp;
        return ImageContainer.Unknown;
    }

    /// <summary>A short description of what a non-image file seems to be, for the report ("a text file", "a zip archive", ...).</summary>
    public static string DescribeNonImage(ReadOnlySpan<byte> data)
    {
        if (data.Length == 0) return "the file is empty";
        if (data.Length >= 4 && data[0] == 'P' && data[1] == 'K' && data[2] == 3 && data[3] == 4) return "the content is a zip archive";
        if (data.Length >= 12 && data[4] == 'f' && data[5] == 't' && data[6] == 'y' && data[7] == 'p')
        {
            var brand = System.Text.Encoding.ASCII.GetString(data.Slice(8, 4));
            return brand.StartsWith("hei", StringComparison.Ordinal) || brand.StartsWith("mif", StringComparison.Ordinal)
                || brand.StartsWith("hev", StringComparison.Ordinal)
                ? "the content is HEIC/HEIF (iPhone photo format), which is not supported; export it as JPEG"
                : $"the content is an ISO media file (brand '{brand}'), not a still image";
        }
        if ((data.Length >= 4 && data[0] == 'I' && data[1] == 'I' && data[2] == 42 && data[3] == 0)
            || (data.Length >= 4 && data[0] == 'M' && data[1] == 'M' && data[2] == 0 && data[3] == 42))
            return "the content is TIFF (or a camera raw file), which is not supported; export it as JPEG or PNG";
        if (data.Length >= 4 && data[0] == '%' && data[1] == 'P' && data[2] == 'D' && data[3] == 'F') return "the content is a PDF document";
        var head = data[..Math.Min(data.Length, 512)];
        int printable = 0;
        foreach (var b in head)
            if (b is 9 or 10 or 13 || (b >= 32 && b < 127) || b >= 128) printable++;
        if (printable == head.Length)
        {
            var text = System.Text.Encoding.UTF8.GetString(head[..Math.Min(head.Length, 40)]).ReplaceLineEndings(" ").Trim();
            return $"the content is text (\"{text}...\"), not an image";
        }
        return "the content is not a JPEG, PNG, GIF, WebP or BMP image";
    }

    /// <summary>Recognises the format and walks the file's structure (markers, chunks, blocks) to check it is complete.</summary>
    public static ImageFileInfo Inspect(ReadOnlySpan<byte> data) => Sniff(data) switch
    {
        ImageContainer.Jpeg => InspectJpeg(data),
        ImageContainer.Png => InspectPng(data),
        ImageContainer.Gif => InspectGif(data),
        ImageContainer.Webp => InspectWebp(data),
        ImageContainer.Bmp => InspectBmp(data),
        _ => new ImageFileInfo(ImageContainer.Unknown, false, DescribeNonImage(data), 0, 0, -1),
    };

    static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    static ImageFileInfo InspectJpeg(ReadOnlySpan<byte> d)
    {
        int components = 0, adobe = -1, pos = 2;
        bool sawScan = false;
        ImageFileInfo Incomplete(string why) => new(ImageContainer.Jpeg, false, why, 1, components, adobe);
        while (true)
        {
            // Find the next marker: 0xFF followed by a non-0xFF byte.
            if (pos >= d.Length) return Incomplete("truncated: the JPEG ends before its end-of-image marker (the download or copy was cut short)");
            if (d[pos] != 0xFF)
            {
                // Extraneous bytes between segments (libjpeg tolerates them with a warning): skip to the next marker.
                int nextFf = d[pos..].IndexOf((byte)0xFF);
                if (nextFf < 0) return Incomplete("truncated: the JPEG ends before its end-of-image marker (the download or copy was cut short)");
                pos += nextFf;
            }
            while (pos < d.Length && d[pos] == 0xFF) pos++;
            if (pos >= d.Length) return Incomplete("truncated: the JPEG ends before its end-of-image marker (the download or copy was cut short)");
            byte m = d[pos++];
            if (m == 0xD9)
                return sawScan
                    ? new ImageFileInfo(ImageContainer.Jpeg, true, null, 1, components, adobe)
                    : Incomplete("corrupt: the JPEG has no image data (no scan before its end marker)");
            if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;
            if (pos + 2 > d.Length) return Incomplete("truncated: the JPEG ends inside a header segment");
            int len = BinaryPrimitives.ReadUInt16BigEndian(d[pos..]);
            if (len < 2) return Incomplete($"corrupt: JPEG segment 0xFF{m:X2} has an invalid length {len}");
            if (pos + len > d.Length) return Incomplete("truncated: the JPEG ends inside a header segment");
            var seg = d.Slice(pos + 2, len - 2);
            bool isSof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
            if (isSof && seg.Length >= 6) components = seg[5];
            if (m == 0xEE && seg.Length >= 12 && seg[..5].SequenceEqual("Adobe"u8)) adobe = seg[11];
            pos += len;
            if (m == 0xDA)
            {
                sawScan = true;
                // Entropy-coded data: 0xFF is always followed by 0x00 (stuffing) or a restart marker inside a scan.
                while (true)
                {
                    int ff = d[pos..].IndexOf((byte)0xFF);
                    if (ff < 0) return Incomplete("truncated: the JPEG's image data stops before its end-of-image marker (the file was cut short)");
                    int at = pos + ff;
                    if (at + 1 >= d.Length) return Incomplete("truncated: the JPEG's image data stops before its end-of-image marker (the file was cut short)");
                    byte next = d[at + 1];
                    if (next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF) { pos = at + 1; if (next != 0xFF) pos++; continue; }
                    pos = at;
                    break;
                }
            }
        }
    }

    static ImageFileInfo InspectPng(ReadOnlySpan<byte> d)
    {
        int pos = 8, frames = 1;
        bool sawIdat = false;
        ImageFileInfo Bad(string why) => new(ImageContainer.Png, false, why, frames, 0, -1);
        while (true)
        {
            if (pos + 12 > d.Length) return Bad("truncated: the PNG ends before its IEND chunk (the file was cut short)");
            uint len = BinaryPrimitives.ReadUInt32BigEndian(d[pos..]);
            if (len > int.MaxValue || pos + 12L + len > d.Length)
                return Bad("truncated: a PNG chunk runs past the end of the file (the file was cut short)");
            var typeAndData = d.Slice(pos + 4, 4 + (int)len);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(d[(pos + 8 + (int)len)..]);
            var type = System.Text.Encoding.ASCII.GetString(typeAndData[..4]);
            if (Crc32(typeAndData) != crc) return Bad($"corrupt: the PNG's {type} chunk fails its checksum (damaged file)");
            if (type == "IDAT") sawIdat = true;
            if (type == "acTL" && len >= 4) frames = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32BigEndian(typeAndData[4..]));
            if (type == "IEND")
                return sawIdat ? new ImageFileInfo(ImageContainer.Png, true, null, frames, 0, -1)
                               : Bad("corrupt: the PNG has no image data (no IDAT chunk)");
            pos += 12 + (int)len;
        }
    }

    static ImageFileInfo InspectGif(ReadOnlySpan<byte> d)
    {
        int frames = 0;
        ImageFileInfo Result(bool complete, string? why) => new(ImageContainer.Gif, complete, why, Math.Max(frames, 1), 0, -1);
        // A GIF cut short after at least one whole frame still has a usable first frame (the only one we import).
        ImageFileInfo Cut() => frames > 0
            ? Result(true, null)
            : Result(false, "truncated: the GIF ends before its first frame is complete (the file was cut short)");
        if (d.Length < 13) return Cut();
        int pos = 13;
        byte packed = d[10];
        if ((packed & 0x80) != 0) pos += 3 * (1 << ((packed & 7) + 1));
        while (true)
        {
            if (pos >= d.Length) return Cut();
            byte b = d[pos++];
            if (b == 0x3B) return frames > 0 ? Result(true, null) : Result(false, "corrupt: the GIF contains no image");
            if (b == 0x21)
            {
                if (pos >= d.Length) return Cut();
                pos++; // label
                if (!SkipSubBlocks(d, ref pos)) return Cut();
            }
            else if (b == 0x2C)
            {
                if (pos + 9 > d.Length) return Cut();
                byte p = d[pos + 8];
                pos += 9;
                if ((p & 0x80) != 0) pos += 3 * (1 << ((p & 7) + 1));
                pos++; // LZW minimum code size
                if (pos > d.Length || !SkipSubBlocks(d, ref pos)) return Cut();
                frames++;
            }
            else return frames > 0 ? Result(true, null) : Result(false, $"corrupt: unexpected byte 0x{b:X2} in the GIF at {pos - 1}");
        }
    }

    static bool SkipSubBlocks(ReadOnlySpan<byte> d, ref int pos)
    {
        while (true)
        {
            if (pos >= d.Length) return false;
            int size = d[pos++];
            if (size == 0) return true;
            pos += size;
        }
    }

    static ImageFileInfo InspectWebp(ReadOnlySpan<byte> d)
    {
        long riff = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
        int frames = 0;
        if (riff + 8 > d.Length)
            return new ImageFileInfo(ImageContainer.Webp, false, "truncated: the WebP file is shorter than its RIFF header says (the file was cut short)", 1, 0, -1);
        int pos = 12;
        bool sawImage = false;
        while (pos + 8 <= riff + 8)
        {
            var fourcc = System.Text.Encoding.ASCII.GetString(d.Slice(pos, 4));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(d[(pos + 4)..]);
            if (pos + 8 + size > d.Length)
                return new ImageFileInfo(ImageContainer.Webp, false, $"truncated: the WebP {fourcc.Trim()} chunk runs past the end of the file", Math.Max(frames, 1), 0, -1);
            if (fourcc == "ANMF") frames++;
            if (fourcc is "VP8 " or "VP8L" or "ANMF") sawImage = true;
            pos += 8 + (int)size + (int)(size & 1);
        }
        return sawImage
            ? new ImageFileInfo(ImageContainer.Webp, true, null, Math.Max(frames, 1), 0, -1)
            : new ImageFileInfo(ImageContainer.Webp, false, "corrupt: the WebP file has no image data", 1, 0, -1);
    }

    static ImageFileInfo InspectBmp(ReadOnlySpan<byte> d)
    {
        ImageFileInfo Bad(string why) => new(ImageContainer.Bmp, false, why, 1, 0, -1);
        uint offBits = BinaryPrimitives.ReadUInt32LittleEndian(d[10..]);
        if (offBits >= d.Length) return Bad("truncated: the BMP ends before its pixel data starts");
        if (d.Length >= 34)
        {
            uint headerSize = BinaryPrimitives.ReadUInt32LittleEndian(d[14..]);
            if (headerSize >= 40)
            {
                long w = BinaryPrimitives.ReadInt32LittleEndian(d[18..]);
                long h = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d[22..]));
                int bpp = BinaryPrimitives.ReadUInt16LittleEndian(d[28..]);
                uint compression = BinaryPrimitives.ReadUInt32LittleEndian(d[30..]);
                if (compression is 0 or 3 && w > 0 && bpp > 0)
                {
                    long rowBytes = (bpp * w + 31) / 32 * 4;
                    if (offBits + rowBytes * h > d.Length) return Bad("truncated: the BMP's pixel data is shorter than its header says (the file was cut short)");
                }
            }
        }
        return new ImageFileInfo(ImageContainer.Bmp, true, null, 1, 0, -1);
    }

    static readonly uint[] CrcTable = BuildCrcTable();

    static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    /// <summary>The CRC-32 used by PNG chunks (ISO 3309 / zlib polynomial).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
