using DreamBooth.Imaging;
using DreamBooth.Imaging.Import;
using DreamBooth.Loading;
using DreamBooth.Notebooks.Charts;
using DreamBooth.Pipelines;
using DreamBooth.Text;
using Microsoft.DotNet.Interactive.Formatting;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Notebooks;

/// <summary>
/// Registers text/html formatters (Microsoft.DotNet.Interactive.Formatting) so that the engine's objects show as
/// pictures, tables and charts when they are the last expression of a cell or passed to <c>display(…)</c>:
/// images (inline base64 PNG), lists of images (a grid), <see cref="GridResult"/>, <see cref="GenerationResult"/>,
/// <see cref="ModelInspection"/>, <see cref="ImportReport"/>, <see cref="IdentifierReport"/>, <see cref="TokenView"/>,
/// <see cref="SvgChart"/> / <see cref="ChartRow"/>, <see cref="HtmlTable"/> and the live progress display. Call once in a notebook's first cell;
/// calling again does nothing.
/// </summary>
public static class NotebookFormatters
{
    static int s_registered;

    /// <summary>Registers the formatters (idempotent, thread-safe).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 1) return;
        const string html = "text/html";
        Formatter.Register<Image<Rgb24>>((img, w) => w.Write(NotebookHtml.Img(img)), html);
        Formatter.Register<Image>((img, w) =>
        {
            using var rgb = img.CloneAs<Rgb24>();
            w.Write(NotebookHtml.Img(rgb));
        }, html);
        Formatter.Register<List<Image<Rgb24>>>((imgs, w) => w.Write(new ImageGrid(imgs).ToHtml()), html);
        Formatter.Register<Image<Rgb24>[]>((imgs, w) => w.Write(new ImageGrid(imgs).ToHtml()), html);
        Formatter.Register<ImageGrid>((g, w) => w.Write(g.ToHtml()), html);
        Formatter.Register<GridResult>((g, w) => w.Write(g.ToHtml()), html);
        Formatter.Register<GenerationResult>((r, w) => w.Write(GenerationHtml(r)), html);
        Formatter.Register<ModelInspection>((m, w) => w.Write(ReportHtml.ModelInspection(m)), html);
        Formatter.Register<ImportReport>((r, w) => w.Write(ReportHtml.ImportReport(r)), html);
        Formatter.Register<StepsRecommendation>((r, w) => w.Write(ReportHtml.StepsRecommendation(r)), html);
        Formatter.Register<IdentifierReport>((r, w) => w.Write(ReportHtml.IdentifierReport(r)), html);
        Formatter.Register<TokenView>((t, w) => w.Write(t.ToHtml()), html);
        Formatter.Register<SvgChart>((c, w) => w.Write(c.ToSvg()), html);
        Formatter.Register<ChartRow>((c, w) => w.Write(c.ToHtml()), html);
        Formatter.Register<ProgressSnapshot>((p, w) => w.Write(p.ToHtml()), html);
        Formatter.Register<NegativePromptPresets>((p, w) => w.Write(ReportHtml.NegativePromptPresets(p)), html);
        Formatter.Register<HtmlTable>((t, w) => w.Write(t.ToHtml()), html);
        foreach (var t in new[] { typeof(Image<Rgb24>), typeof(Image), typeof(List<Image<Rgb24>>), typeof(Image<Rgb24>[]), typeof(ImageGrid),
                     typeof(GridResult), typeof(GenerationResult), typeof(ModelInspection), typeof(ImportReport), typeof(StepsRecommendation),
                     typeof(IdentifierReport), typeof(TokenView), typeof(SvgChart), typeof(ChartRow), typeof(ProgressSnapshot), typeof(NegativePromptPresets), typeof(HtmlTable) })
            Formatter.SetPreferredMimeTypesFor(t, html);
    }

    /// <summary>A generation result as a row of images captioned with their seeds.</summary>
    public static string GenerationHtml(GenerationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var images = result.ToImages();
        try
        {
            return new ImageGrid(images, result.Seeds.Select(s => $"seed {s}").ToList()).ToHtml();
        }
        finally
        {
            foreach (var i in images) i.Dispose();
        }
    }
}
