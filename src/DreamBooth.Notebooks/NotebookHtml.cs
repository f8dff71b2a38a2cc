using System.Globalization;
using System.Net;
using System.Text;
using DreamBooth.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace DreamBooth.Notebooks;

/// <summary>Small HTML building blocks shared by the formatters: encoding, inline PNG images, chips.</summary>
public static class NotebookHtml
{
    /// <summary>HTML-encodes text.</summary>
    public static string Enc(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>Formats a number with the invariant culture (HTML and SVG attributes must not use a decimal comma).</summary>
    public static string Num(double value, string format = "0.##") => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>The image as a base64 PNG data URI.</summary>
    public static string PngDataUri(Image<Rgb24> image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return "data:image/png;base64," + Convert.ToBase64String(PngInfo.Encode(image, null));
    }

    /// <summary>
    /// An inline <c>&lt;img&gt;</c> with the image as a base64 PNG. Small images (the tiny model makes 32–64 px pictures)
    /// are shown at <paramref name="displayWidth"/> pixels with crisp (nearest-neighbour) scaling so they can be seen.
    /// </summary>
    public static string Img(Image<Rgb24> image, int? displayWidth = null, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        int w = displayWidth ?? DefaultDisplayWidth(image.Width);
        int h = (int)Math.Round(w * (double)image.Height / image.Width);
        var sb = new StringBuilder();
        sb.Append("<img src=\"").Append(PngDataUri(image)).Append("\" width=\"").Append(w).Append("\" height=\"").Append(h)
          .Append("\" style=\"image-rendering:pixelated;border-radius:3px\"");
        if (title != null) sb.Append(" title=\"").Append(Enc(title)).Append("\" alt=\"").Append(Enc(title)).Append('"');
        sb.Append("/>");
        return sb.ToString();
    }

    /// <summary>Display width for an image of the given pixel width: small images are enlarged to about 128 px, large ones shown at most 512 px wide.</summary>
    public static int DefaultDisplayWidth(int pixelWidth) => pixelWidth switch
    {
        <= 0 => 128,
        < 128 => pixelWidth * Math.Max(1, 128 / pixelWidth),
        > 512 => 512,
        _ => pixelWidth,
    };

    /// <summary>A thumbnail (longest side <paramref name="size"/>) of an image file; null when the file cannot be read.</summary>
    public static Image<Rgb24>? Thumbnail(string? path, int size = 96)
    {
        if (path is null || !File.Exists(path)) return null;
        try
        {
            var img = Image.Load<Rgb24>(path);
            if (img.Width > size || img.Height > size)
                img.Mutate(c => c.Resize(new ResizeOptions { Size = new Size(size, size), Mode = ResizeMode.Max }));
            return img;
        }
        catch (Exception e) when (e is IOException or UnknownImageFormatException or InvalidImageContentException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>A rounded coloured label (token chips, verdict badges).</summary>
    public static string Chip(string text, string background, string? title = null, string color = "#111", bool monospace = true)
    {
        var sb = new StringBuilder();
        sb.Append("<span style=\"display:inline-block;margin:2px;padding:1px 6px;border-radius:10px;background:")
          .Append(background).Append(";color:").Append(color)
          .Append(monospace ? ";font-family:monospace" : "").Append(";font-size:13px;white-space:pre\"");
        if (title != null) sb.Append(" title=\"").Append(Enc(title)).Append('"');
        sb.Append('>').Append(Enc(text)).Append("</span>");
        return sb.ToString();
    }
}
