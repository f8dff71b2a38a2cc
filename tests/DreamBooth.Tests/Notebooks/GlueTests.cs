using System.Text.RegularExpressions;
using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Notebooks;
using DreamBooth.Notebooks.Charts;
using DreamBooth.Pipelines;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Text;
using Microsoft.DotNet.Interactive.Formatting;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.Notebooks;

/// <summary>The notebook glue outside a kernel: charts, formatters, progress, inputs.</summary>
public sealed class GlueTests
{
    static string TinyModel => TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers");

    [Fact]
    public void Linear_axis_has_nice_ticks_covering_the_data()
    {
        var a = Axis.Linear(0.13, 0.87, 6);
        Assert.True(a.Min <= 0.13 && a.Max >= 0.87);
        Assert.Equal([0, 0.2, 0.4, 0.6, 0.8, 1.0], a.Ticks.Select(t => Math.Round(t, 9)));
        var steps = Axis.Linear(1, 16, 8, integer: true);
        Assert.All(steps.Ticks, t => Assert.Equal(Math.Round(t), t));
        var flat = Axis.Linear(5, 5);
        Assert.True(flat.Min < 5 && flat.Max > 5); // a constant series stays visible
    }

    [Fact]
    public void Log_axis_ticks_are_decades()
    {
        var a = Axis.Logarithmic(0.0042, 870, 12);
        Assert.Equal(0.001, a.Min, 12);
        Assert.Equal(1000, a.Max, 9);
        Assert.Equal([0.001, 0.01, 0.1, 1, 10, 100, 1000], a.Ticks.Select(t => Math.Round(t, 9)));
        Assert.Equal(0.5, a.Fraction(Math.Sqrt(0.001 * 1000)), 9);
        Assert.Equal("0.001", Axis.Label(0.001));
        Assert.Equal("1e-4", Axis.Label(0.0001));
        Assert.Equal("2.5e6", Axis.Label(2.5e6));
        Assert.Equal("0.25", Axis.Label(0.25));
    }

    [Fact]
    public void Smoothing_is_debiased_and_skips_missing_values()
    {
        var s = Charts.Smooth([2, 2, double.NaN, 2, 2], 0.9);
        Assert.Equal(2, s[0], 9); // no pull towards zero at the start
        Assert.True(double.IsNaN(s[2]));
        Assert.Equal(2, s[4], 9);
        var step = Charts.Smooth([0, 0, 0, 10, 10], 0.5);
        Assert.True(step[3] > 0 && step[3] < 10 && step[4] > step[3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => Charts.Smooth([1], 1.0));
    }

    [Fact]
    public void Chart_draws_each_series_with_legend_and_breaks_at_gaps()
    {
        var chart = new SvgChart
        {
            Title = "t",
            LogY = true,
            Series =
            [
                new ChartSeries("a", [1, 2, 3, 4, 5], [1, 10, double.NaN, 100, 1000]),
                new ChartSeries("b", [1, 2, 3], [-1, 5, 6]) { Kind = SeriesKind.Scatter },
                new ChartSeries("lr", [1, 2, 3], [1e-4, 2e-4, 1e-4]) { Axis = YAxisSide.Right, Dashed = true },
            ],
        };
        var svg = chart.ToSvg();
        Assert.StartsWith("<svg", svg);
        Assert.EndsWith("</svg>", svg);
        var a = Regex.Match(svg, "data-name=\"a\">(.*?)</g>").Groups[1].Value;
        Assert.Equal(2, Regex.Matches(a, "<polyline").Count); // NaN breaks the line
        var b = Regex.Match(svg, "data-name=\"b\">(.*?)</g>").Groups[1].Value;
        Assert.Equal(2, Regex.Matches(b, "<circle").Count); // -1 cannot be shown on a log axis
        Assert.Contains("lr (right)", svg);
        Assert.Contains("stroke-dasharray", svg);
        Assert.Throws<ArgumentException>(() => new SvgChart { Series = [new ChartSeries("x", [1, 2], [1])] }.ToSvg());
    }

    [Fact]
    public void Loss_chart_and_noise_schedule_have_their_series()
    {
        var loss = Charts.LossAndLearningRate([1, 2, 3, 4], [0.5, 0.4, 0.45, 0.3], [1e-6, 2e-6, 2e-6, 2e-6]);
        Assert.Equal(3, loss.Series.Count);
        Assert.Contains("learning rate", loss.ToSvg());
        Assert.Throws<ArgumentException>(() => Charts.LossAndLearningRate([1, 2], [0.5]));

        var alphas = Enumerable.Range(0, 1000).Select(t => (float)Math.Exp(-t / 200.0)).ToArray();
        var row = Charts.NoiseSchedule(alphas, "test");
        Assert.Equal(2, row.Charts.Count);
        Assert.True(row.Charts[1].LogY);
        var snr = row.Charts[1].Series.Single(s => s.Name.StartsWith("SNR", StringComparison.Ordinal));
        Assert.Equal(alphas[500] / (1 - alphas[500]), snr.Y[500], 4);
        Assert.Equal(2, Regex.Matches(row.ToHtml(), "<svg").Count);
    }

    [Fact]
    public void Images_and_grids_format_as_inline_png()
    {
        NotebookFormatters.Register();
        using var img = new Image<Rgb24>(16, 8, new Rgb24(200, 10, 10));
        var html = img.ToDisplayString("text/html");
        var m = Regex.Match(html, "src=\"data:image/png;base64,([^\"]+)\"");
        Assert.True(m.Success, html);
        using var back = Image.Load<Rgb24>(Convert.FromBase64String(m.Groups[1].Value));
        Assert.Equal((16, 8), (back.Width, back.Height));
        Assert.Equal(new Rgb24(200, 10, 10), back[3, 3]);

        var list = new List<Image<Rgb24>> { img, img };
        Assert.Equal(2, Regex.Matches(list.ToDisplayString("text/html"), "<img ").Count);
        Assert.Contains("seed 1", new ImageGrid(list, ["seed 1", "seed 2"]).ToHtml());
        Assert.Throws<ArgumentException>(() => new ImageGrid(list, ["only one"]).ToHtml());
        Assert.StartsWith("<svg", new SvgChart { Series = [ChartSeries.Indexed("x", [1, 2])] }.ToDisplayString("text/html"));
    }

    [Fact]
    public void Model_inspection_and_tokens_render_as_html()
    {
        var html = ReportHtml.ModelInspection(ModelInspector.Inspect(TinyModel));
        foreach (var c in new[] { "unet", "vae", "text_encoder" }) Assert.Contains($"<b>{c}</b>", html);

        var tok = ClipTokenizer.FromFolder(Path.Combine(TinyModel, "tokenizer"));
        var view = TokenView.Of(tok, "a photo of zwx diamond", "zwx");
        Assert.True(view.Tokens[0].IsSpecial && view.Tokens[^1].IsSpecial);
        var marked = view.Tokens.Where(t => t.IsHighlighted).Select(t => t.Id).ToArray();
        Assert.Equal(tok.Encode("zwx"), marked);
        Assert.Contains("#ffd54f", view.ToHtml());
        var report = IdentifierCheck.Check(tok, "zwx");
        Assert.Contains(NotebookHtml.Enc(report.Pieces[0].Token), ReportHtml.IdentifierReport(report));

        var longPrompt = string.Join(' ', Enumerable.Repeat("diamond", 90));
        var cut = TokenView.Of(tok, longPrompt);
        Assert.Contains(cut.Tokens, t => t.IsCut);
        Assert.NotNull(cut.TruncationWarning);
    }

    [Fact]
    public void Import_report_shows_a_thumbnail_per_imported_image_and_the_issues()
    {
        using var tmp = TestPaths.NewTempDir("nbimport");
        var src = Directory.CreateDirectory(Path.Combine(tmp.Path, "src")).FullName;
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "data", "demo-subject"), "*.png").Where(f => !DreamBooth.Training.MaskFiles.IsMask(f)).Take(3))
            File.Copy(f, Path.Combine(src, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(src, "notes.png"), "not a picture");
        var report = new DreamBooth.Imaging.Import.InstanceImageImporter(new DreamBooth.Imaging.Import.ImportOptions { Resolution = 64 })
            .Import(src, Path.Combine(tmp.Path, "out"));
        var html = ReportHtml.ImportReport(report);
        Assert.Equal(3, report.Summary.Imported);
        Assert.Equal(3, Regex.Matches(html, "<img ").Count);
        Assert.Contains("notes.png", html);
        Assert.Contains("#b00020", html); // the refused file's error in red
        Assert.Contains($"Steps: {report.Steps.RecommendedSteps}", html);
    }

    [Fact]
    public void Table_from_objects_has_a_column_per_property_and_encodes_cells()
    {
        var table = HtmlTable.From(new[] { new { file = "a <b>.png", size = 1.5 }, new { file = "c.png", size = 2.25 } });
        Assert.Equal(["file", "size"], table.Headers);
        Assert.Equal(2, table.Rows.Count);
        Assert.Equal(["c.png", "2.25"], table.Rows[1]);
        var html = table.ToHtml();
        Assert.Equal(2, Regex.Matches(html, "<th ").Count);
        Assert.Equal(4, Regex.Matches(html, "<td ").Count);
        Assert.Contains("a &lt;b&gt;.png", html);
        NotebookFormatters.Register();
        Assert.Equal(html, table.ToDisplayString("text/html"));
        Assert.Throws<ArgumentException>(() => new HtmlTable(["a", "b"], [["only one"]]).ToHtml());
    }

    [Fact]
    public async Task Inputs_return_defaults_headless()
    {
        Assert.True(Inputs.IsHeadless); // no kernel in a test process
        Assert.Equal("hello", await Inputs.Text("Prompt", "hello"));
        Assert.Equal(20, await Inputs.Int("Steps", 20));
        Assert.Equal(7.5, await Inputs.Number("CFG", 7.5));
        Assert.Equal(DreamBooth.Sampling.Sampler.Euler, await Inputs.Choice("Sampler", DreamBooth.Sampling.Sampler.Euler));
        await Assert.ThrowsAsync<ArgumentException>(() => Inputs.Choice("x", ["a", "b"], "c"));
    }

    [Fact]
    public void Progress_records_step_times_losses_and_previews_without_a_kernel()
    {
        using var p = LiveProgress.Show("test", keepPreviews: true, minIntervalMs: 0);
        p.Report(new ProgressUpdate(1, 4, 0.5));
        p.Report(new GenerationProgress(3, 4, 500, new Image<Rgb24>(4, 4)));
        IProgress<(int S, double L)> adapted = p.For<(int S, double L)>(v => new ProgressUpdate(v.S, 4, v.L));
        adapted.Report((4, 0.25));
        Assert.Equal(4, p.StepSeconds.Count);
        Assert.Equal([(1, 0.5), (4, 0.25)], p.Losses);
        Assert.Single(p.Previews);
        Assert.Equal(3, p.Previews[0].Step);
        var snap = new ProgressSnapshot("x", 2, 4, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), 0.1, null, null, false).ToHtml();
        Assert.Contains("2 / 4", snap);
        Assert.Contains("ETA 0:10", snap);
    }
}
