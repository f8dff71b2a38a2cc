using DreamBooth.TinyWorld;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace DreamBooth.Tests.TinyWorld;

public class TinyWorldMeasurementTests(ITestOutputHelper output)
{
    static List<TinyWorldSample> HeldOut(int count = 500) =>
        new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 2024, Count = count, Split = TinyWorldSplit.HeldOut }).ToList();

    TinyWorldEvaluation EvaluateDegraded(string name, Func<Image<Rgb24>, int, Image<Rgb24>> degrade)
    {
        var items = HeldOut().Select(s =>
        {
            using var clean = s.Render();
            return (Image: degrade(clean, s.Index), s.Scene);
        }).ToList();
        var ev = TinyWorldEvaluation.Evaluate(items);
        foreach (var (im, _) in items) im.Dispose();
        output.WriteLine($"{name}: {ev}");
        return ev;
    }

    static void AtLeast(AttributeAccuracy a, double min, string what) =>
        Assert.True(a.Accuracy >= min, $"{what}: {a} is below {min:P0}");

    [Fact]
    public void CleanHeldOutRendersAreClassifiedAtLeast99Percent()
    {
        var ev = EvaluateDegraded("clean", (im, _) => im.Clone());
        Assert.Equal(500, ev.Images);
        foreach (var (a, n) in new[] { (ev.ObjectPresent, "present"), (ev.Background, "background"), (ev.Shape, "shape"), (ev.Color, "colour"),
                     (ev.Position, "position"), (ev.Size, "size"), (ev.Count, "count") })
            AtLeast(a, 0.99, n);
    }

    [Fact]
    public void BlurredNoisyRendersAreClassifiedWell()
    {
        // Gaussian blur sigma 1 px + Gaussian noise sigma 8/255.
        var ev = EvaluateDegraded("blur 1 + noise 8", (im, i) =>
        {
            using var b = TinyWorldDegradations.GaussianBlur(im, 1.0);
            return TinyWorldDegradations.AddNoise(b, 8, i);
        });
        foreach (var (a, n) in new[] { (ev.Background, "background"), (ev.Shape, "shape"), (ev.Color, "colour"), (ev.Position, "position"), (ev.Size, "size"), (ev.Count, "count") })
            AtLeast(a, 0.97, n);
    }

    [Fact]
    public void DownscaledRendersAreClassifiedWell()
    {
        // 2x box downscale + bilinear upscale (a VAE with a 32x32 latent grid), then blur 0.5 + noise 6.
        var ev2 = EvaluateDegraded("down-up x2 + blur 0.5 + noise 6", (im, i) =>
        {
            using var d = TinyWorldDegradations.DownUp(im, 2);
            using var b = TinyWorldDegradations.GaussianBlur(d, 0.5);
            return TinyWorldDegradations.AddNoise(b, 6, i);
        });
        foreach (var (a, n) in new[] { (ev2.Background, "background"), (ev2.Shape, "shape"), (ev2.Color, "colour"), (ev2.Position, "position"), (ev2.Size, "size"), (ev2.Count, "count") })
            AtLeast(a, 0.95, n);
        // 4x (a 16x16 latent grid): small shapes become ~3 px blobs, so shape is hard; the rest must hold.
        var ev4 = EvaluateDegraded("down-up x4", (im, _) => TinyWorldDegradations.DownUp(im, 4));
        foreach (var (a, n) in new[] { (ev4.Background, "background"), (ev4.Color, "colour"), (ev4.Position, "position"), (ev4.Size, "size"), (ev4.Count, "count") })
            AtLeast(a, 0.95, n);
        AtLeast(ev4.Shape, 0.75, "shape (x4)");
    }

    [Fact]
    public void PlainBackgroundHasNoObject()
    {
        foreach (var bg in TinyWorldPalette.All)
        {
            var (r, g, b) = TinyWorldPalette.ToRgb(bg);
            using var img = new Image<Rgb24>(64, 64, new Rgb24(r, g, b));
            using var noisy = TinyWorldDegradations.AddNoise(img, 8, (int)bg);
            var m = TinyWorldMeasurements.Measure(noisy);
            Assert.False(m.ObjectPresent, $"object found on a plain {bg} background");
            Assert.Equal(bg, m.Background);
            Assert.Null(m.Shape);
        }
    }

    [Fact]
    public void EveryShapeColourAndBackgroundPairIsRecognised()
    {
        var wrong = new List<string>();
        foreach (var shape in Enum.GetValues<ShapeKind>())
            foreach (var color in TinyWorldPalette.All)
                foreach (var bg in TinyWorldPalette.All)
                {
                    if (color == bg) continue;
                    var scene = new TinyWorldScene(shape, color, ObjectSize.Small, GridPosition.Center, bg);
                    using var img = scene.Render();
                    using var blurred = TinyWorldDegradations.GaussianBlur(img, 0.8);
                    var m = TinyWorldMeasurements.Measure(blurred);
                    if (m.Shape != shape || m.Color != color || m.Background != bg || m.Size != ObjectSize.Small)
                        wrong.Add($"{scene.Caption()} -> {m.Size} {m.Color} {m.Shape} on {m.Background}");
                }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void PromptFidelityReportsWhichAttributesAreObeyed()
    {
        var scene = new TinyWorldScene(ShapeKind.Square, NamedColor.Red, ObjectSize.Large, GridPosition.TopRight, NamedColor.White);
        using var img = scene.Render();
        var ok = PromptFidelity.Check(img, SceneRequest.Parse("a large red square in the top right on a white background"));
        Assert.True(ok.AllObeyed);
        var bad = PromptFidelity.Check(img, SceneRequest.Parse("two small blue circles at the bottom on a green background"));
        Assert.Equal(false, bad.Shape);
        Assert.Equal(false, bad.Color);
        Assert.Equal(false, bad.Size);
        Assert.Equal(false, bad.Position);
        Assert.Equal(false, bad.Background);
        Assert.Equal(false, bad.Count);
        Assert.False(bad.AllObeyed);
        var partial = PromptFidelity.Check(img, SceneRequest.Parse("a square on a black background"));
        Assert.Equal(true, partial.Shape);
        Assert.Equal(false, partial.Background);
        Assert.Null(partial.Color);
        Assert.Null(partial.Position);
        var ev = TinyWorldEvaluation.Evaluate(new[]
        {
            (img, SceneRequest.Parse("a red square on a white background")),
            (img, SceneRequest.Parse("a red circle on a blue background")),
        });
        Assert.Equal(new AttributeAccuracy(1, 2), ev.Shape);
        Assert.Equal(new AttributeAccuracy(2, 2), ev.Color);
        Assert.Equal(new AttributeAccuracy(1, 2), ev.Background);
        Assert.Equal(0, ev.Position.Total);
        Assert.Null(ev.Position.Accuracy);
    }

    [Fact]
    public void ParsesPromptsWithTheIdentifier()
    {
        var r = SceneRequest.Parse("a zwx diamond in the bottom right on a red background", DemoSubject.Identifier);
        Assert.True(r.IsSubject);
        Assert.Equal(ShapeKind.Diamond, r.Shape);
        Assert.Equal(GridPosition.BottomRight, r.Position);
        Assert.Equal(NamedColor.Red, r.Background);
        Assert.Null(r.Color);
        Assert.Equal(ObjectCount.One, r.Count);
        Assert.False(SceneRequest.Parse("a diamond", DemoSubject.Identifier).IsSubject);
        Assert.Equal(GridPosition.Left, SceneRequest.Parse("two crosses on the left").Position);
        Assert.Equal(ObjectCount.Two, SceneRequest.Parse("two crosses on the left").Count);
        Assert.Equal(GridPosition.Center, SceneRequest.Parse("a circle in the middle").Position);
    }
}
