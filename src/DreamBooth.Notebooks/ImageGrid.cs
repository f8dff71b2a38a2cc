using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Notebooks;

/// <summary>
/// Images shown side by side with optional captions (seeds, sampler names, steps). A list of images renders as one of
/// these; build one yourself to add captions: <c>new ImageGrid(images, seeds.Select(s =&gt; $"seed {s}").ToList())</c>.
/// </summary>
/// <param name="Images">The pictures, in reading order.</param>
/// <param name="Captions">One caption per picture (or null for none).</param>
/// <param name="Columns">Pictures per row; 0 lets the row wrap to the notebook's width.</param>
/// <param name="DisplayWidth">Width of each picture on screen in pixels; null picks one from the image size.</param>
public sealed record ImageGrid(IReadOnlyList<Image<Rgb24>> Images, IReadOnlyList<string>? Captions = null, int Columns = 0, int? DisplayWidth = null)
{
    /// <summary>The grid as HTML (inline base64 PNGs in a flex or CSS-grid layout).</summary>
    public string ToHtml()
    {
        ArgumentNullException.ThrowIfNull(Images);
        if (Captions != null && Captions.Count != Images.Count)
            throw new ArgumentException($"ImageGrid has {Images.Count} images but {Captions.Count} captions; give one caption per image or none.", nameof(Captions));
        var sb = new StringBuilder();
        sb.Append(Columns > 0
            ? $"<div style=\"display:grid;grid-template-columns:repeat({Columns},max-content);gap:6px\">"
            : "<div style=\"display:flex;flex-wrap:wrap;gap:6px\">");
        for (int i = 0; i < Images.Count; i++)
        {
            var caption = Captions?[i];
            sb.Append("<figure style=\"margin:0;text-align:center\">")
              .Append(NotebookHtml.Img(Images[i], DisplayWidth, caption));
            if (!string.IsNullOrEmpty(caption))
                sb.Append("<figcaption style=\"font-size:12px\">").Append(NotebookHtml.Enc(caption)).Append("</figcaption>");
            sb.Append("</figure>");
        }
        sb.Append("</div>");
        return sb.ToString();
    }
}
