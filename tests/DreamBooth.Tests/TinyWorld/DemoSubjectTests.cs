using DreamBooth.Training;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.TinyWorld;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace DreamBooth.Tests.TinyWorld;

public class DemoSubjectTests(ITestOutputHelper output)
{
    static string Folder => Path.Combine(TestPaths.RepoRoot, "data", "demo-subject");

    /// <summary>Renders an arbitrary paint function with the engine's rasterizer (for negatives).</summary>
    static Image<Rgb24> Paint(DemoSubjectInstance at, Func<double, double, (byte R, byte G, byte B)?> paint)
    {
        var (x, y) = DemoSubject.Center(at);
        var canvas = new Canvas(64, 64, TinyWorldPalette.ToRgb(at.Background));
        canvas.Paint(x, y, at.HalfExtent, paint);
        return canvas.ToImage();
    }

    [Fact]
    public void CommittedInstanceImagesEqualRegeneratedOnes()
    {
        for (var i = 0; i < DemoSubject.Instances.Count; i++)
        {
            var path = Path.Combine(Folder, DemoSubject.FileName(i));
            Assert.True(File.Exists(path), $"{path} is missing; regenerate with DemoSubject.WriteInstances(\"data/demo-subject\")");
            using var committed = Image.Load<Rgb24>(path);
            using var fresh = DemoSubject.RenderInstance(i);
            Assert.True(TinyWorldDatasetTests.SamePixels(committed, fresh), $"{path} differs from DemoSubject.RenderInstance({i})");
            var caption = Path.Combine(Folder, DemoSubject.CaptionFileName(i));
            Assert.True(File.Exists(caption), $"{caption} is missing; regenerate with DemoSubject.WriteInstances(\"data/demo-subject\")");
            Assert.Equal(DemoSubject.Caption(DemoSubject.Instances[i]), File.ReadAllText(caption).Trim());
            var maskPath = MaskFiles.PathFor(path);
            Assert.True(File.Exists(maskPath), $"{maskPath} is missing; regenerate with DemoSubject.WriteInstances(\"data/demo-subject\")");
            using var mask = Image.Load<L8>(maskPath);
            using var freshMask = DemoSubject.RenderMask(DemoSubject.Instances[i]);
            Assert.True(SameMask(mask, freshMask), $"{maskPath} differs from DemoSubject.RenderMask");
        }
        Assert.Equal(DemoSubject.Instances.Count, Directory.GetFiles(Folder, "*.png").Count(f => !MaskFiles.IsMask(f)));
        Assert.Equal(DemoSubject.Instances.Count, Directory.GetFiles(Folder, "*" + MaskFiles.Suffix).Length);
        var readme = File.ReadAllText(Path.Combine(Folder, "README.md"));
        Assert.Contains(DemoSubject.Identifier, readme);
        Assert.Contains(DemoSubject.ClassPrompt, readme);
    }

    static bool SameMask(Image<L8> a, Image<L8> b)
    {
        if (a.Width != b.Width || a.Height != b.Height) return false;
        for (int y = 0; y < a.Height; y++) for (int x = 0; x < a.Width; x++) if (a[x, y] != b[x, y]) return false;
        return true;
    }

    [Fact]
    public void MasksCoverExactlyTheSubject()
    {
        // white inside the diamond, black on the background, and the mask's weight is the subject's painted area
        foreach (var at in DemoSubject.Instances)
        {
            using var mask = DemoSubject.RenderMask(at);
            using var image = DemoSubject.Render(at);
            var bg = TinyWorldPalette.ToRgb(at.Background);
            double coverage = 0;
            int differing = 0;
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                {
                    var m = mask[x, y].PackedValue;
                    var p = image[x, y];
                    bool isBackground = p.R == bg.R && p.G == bg.G && p.B == bg.B;
                    if (isBackground) Assert.Equal(0, m);
                    else { Assert.True(m > 0, $"subject pixel ({x}, {y}) has mask 0"); differing++; }
                    coverage += m / 255.0;
                }
            double area = ShapeGeometry.Area(DemoSubject.ClassShape) * Math.Pow(at.HalfExtent * 64, 2);
            Assert.InRange(coverage, 0.95 * area, 1.05 * area);
            Assert.True(differing >= coverage);
        }
    }

    [Fact]
    public void WriteInstancesRoundTripsThroughPng()
    {
        using var dir = TestPaths.NewTempDir("demosubject");
        var paths = DemoSubject.WriteInstances(dir.Path);
        Assert.Equal(10, paths.Count);
        Assert.All(paths, p => Assert.True(File.Exists(MaskFiles.PathFor(p))));
        using var a = Image.Load<Rgb24>(paths[3]);
        using var b = DemoSubject.RenderInstance(3);
        Assert.True(TinyWorldDatasetTests.SamePixels(a, b));
        Assert.Equal("a zwx diamond on the left on a green background", File.ReadAllText(Path.ChangeExtension(paths[3], ".txt")).Trim());
        // every caption names the subject, its cell and its background, and parses back to them
        Assert.All(DemoSubject.Instances, i =>
        {
            var request = SceneRequest.Parse(DemoSubject.Caption(i), DemoSubject.Identifier);
            Assert.StartsWith(DemoSubject.InstancePrompt + " ", DemoSubject.Caption(i));
            Assert.Equal(i.Position, request.Position);
            Assert.Equal(i.Background, request.Background);
        });
    }

    [Fact]
    public void InstancesLeaveRoomForRecontextualisation()
    {
        Assert.Equal(10, DemoSubject.Instances.Count);
        Assert.All(DemoSubject.Instances, i => Assert.Contains(i.Background, DemoSubject.InstanceBackgrounds));
        Assert.True(DemoSubject.InstanceBackgrounds.Count <= 2);
        Assert.All(DemoSubject.Instances, i => Assert.NotEqual(2, TinyWorldGeometry.Column(i.Position)));
        Assert.True(DemoSubject.Instances.Select(i => i.Position).Distinct().Count() >= 5);
        Assert.Equal("a diamond", DemoSubject.ClassPrompt);
        Assert.Contains(DemoSubject.ClassNoun, TinyWorldVocabulary.AllWords);
        for (var i = 0; i < 10; i++)
        {
            using var img = DemoSubject.RenderInstance(i);
            var m = TinyWorldMeasurements.Measure(img);
            Assert.Equal((ShapeKind?)DemoSubject.ClassShape, m.Shape);
            Assert.Equal((GridPosition?)DemoSubject.Instances[i].Position, m.Position);
            Assert.Equal(DemoSubject.Instances[i].Background, m.Background);
        }
    }

    [Fact]
    public void FidelitySeparatesTheSubjectFromClassShapesAndOtherShapes()
    {
        var degradations = new (string Name, Func<Image<Rgb24>, Image<Rgb24>> Apply)[]
        {
            ("clean", im => im.Clone()),
            ("blur 1 + noise 8", im => { using var b = TinyWorldDegradations.GaussianBlur(im, 1.0); return TinyWorldDegradations.AddNoise(b, 8, 7); }),
            ("down-up x2", im => TinyWorldDegradations.DownUp(im, 2)),
        };
        var yellow = TinyWorldPalette.ToRgb(NamedColor.Yellow);
        var purple = TinyWorldPalette.ToRgb(NamedColor.Purple);
        var white = TinyWorldPalette.ToRgb(NamedColor.White);
        var hard = new (string Name, Func<double, double, (byte R, byte G, byte B)?> Paint)[]
        {
            ("mirrored checker", (u, v) => DemoSubject.Paint(u, v) is null ? null : u * u + v * v <= 0.04 ? white : (u < 0) == (v < 0) ? purple : yellow),
            ("checker circle", (u, v) => u * u + v * v > 1 ? null : u * u + v * v <= 0.04 ? white : (u < 0) == (v < 0) ? yellow : purple),
            ("checker square", (u, v) => Math.Abs(u) > 1 || Math.Abs(v) > 1 ? null : u * u + v * v <= 0.04 ? white : (u < 0) == (v < 0) ? yellow : purple),
            ("yellow/purple halves", (u, v) => Math.Abs(u) + Math.Abs(v) > 1 ? null : u < 0 ? yellow : purple),
            ("red/orange checker", (u, v) => Math.Abs(u) + Math.Abs(v) > 1 ? null : u * u + v * v <= 0.04 ? white
                : (u < 0) == (v < 0) ? TinyWorldPalette.ToRgb(NamedColor.Red) : TinyWorldPalette.ToRgb(NamedColor.Orange)),
        };
        foreach (var (name, apply) in degradations)
        {
            var instances = Enumerable.Range(0, 10).Select(i =>
            {
                using var img = DemoSubject.RenderInstance(i);
                using var d = apply(img);
                return SubjectFidelity.Score(d).Score;
            }).ToList();
            var plain = new List<double>();
            var hardScores = new List<double>();
            foreach (var at in DemoSubject.Instances.Take(2))
            {
                foreach (var shape in Enum.GetValues<ShapeKind>())
                    foreach (var color in TinyWorldPalette.All.Where(c => c != at.Background))
                    {
                        using var img = Paint(at, (u, v) => ShapeGeometry.Contains(shape, u, v) ? TinyWorldPalette.ToRgb(color) : null);
                        using var d = apply(img);
                        plain.Add(SubjectFidelity.Score(d).Score);
                    }
                foreach (var (_, paint) in hard)
                {
                    using var img = Paint(at, paint);
                    using var d = apply(img);
                    hardScores.Add(SubjectFidelity.Score(d).Score);
                }
            }
            output.WriteLine($"{name}: instances min {instances.Min():F3} mean {instances.Average():F3}; " +
                $"plain shapes (all shapes x colours, n={plain.Count}) max {plain.Max():F3} mean {plain.Average():F3}; " +
                $"hard negatives (n={hardScores.Count}) max {hardScores.Max():F3}");
            Assert.True(instances.Min() > 0.9, $"{name}: an instance scores {instances.Min():F3}");
            Assert.True(plain.Max() < 0.3, $"{name}: a plain shape scores {plain.Max():F3}");
            Assert.True(hardScores.Max() < 0.3, $"{name}: a hard negative scores {hardScores.Max():F3}");
        }
    }

    [Fact]
    public void FidelityTermsNameTheCueThatIsMissing()
    {
        // the score is the geometric mean of its three terms; each hard negative fails on its own cue
        var at = DemoSubject.Instances[0];
        var yellow = TinyWorldPalette.ToRgb(DemoSubject.PrimaryColor);
        var purple = TinyWorldPalette.ToRgb(DemoSubject.SecondaryColor);
        var white = TinyWorldPalette.ToRgb(DemoSubject.DotColor);
        using var subject = DemoSubject.RenderInstance(0);
        using var circle = Paint(at, (u, v) => u * u + v * v > 1 ? null : u * u + v * v <= 0.04 ? white : (u < 0) == (v < 0) ? yellow : purple);
        using var plain = Paint(at, (u, v) => Math.Abs(u) + Math.Abs(v) > 1 ? null : yellow);
        using var recoloured = Paint(at, (u, v) => Math.Abs(u) + Math.Abs(v) > 1 ? null : u * u + v * v <= 0.04 ? white
            : (u < 0) == (v < 0) ? TinyWorldPalette.ToRgb(NamedColor.Red) : TinyWorldPalette.ToRgb(NamedColor.Green));
        var s = SubjectFidelity.Score(subject);
        var c = SubjectFidelity.Score(circle);
        var p = SubjectFidelity.Score(plain);
        var r = SubjectFidelity.Score(recoloured);
        foreach (var f in new[] { s, c, p, r })
        {
            output.WriteLine($"{f.Score:F3}: outline {f.OutlineTerm:F2} pattern {f.PatternTerm:F2} colour {f.ColorTerm:F2}");
            Assert.Equal(Math.Cbrt(f.OutlineTerm * f.PatternTerm * f.ColorTerm), f.Score, 9);
        }
        Assert.True(s.OutlineTerm > 0.9 && s.PatternTerm > 0.9 && s.ColorTerm > 0.9, s.ToString());
        Assert.True(c.OutlineTerm < 0.1 && c.ColorTerm > 0.5, c.ToString());
        Assert.True(p.PatternTerm < 0.1 && p.OutlineTerm > 0.9, p.ToString());
        Assert.True(r.ColorTerm < 0.1 && r.OutlineTerm > 0.9, r.ToString());
    }

    [Fact]
    public void RecontextualisedSubjectStillScoresHigh()
    {
        // Unseen backgrounds and position (right column): fidelity must not depend on context, even blurred.
        foreach (var bg in new[] { NamedColor.Red, NamedColor.Orange, NamedColor.White, NamedColor.Black })
        {
            using var clean = DemoSubject.Render(0.8, 0.5, 0.15, bg);
            using var blurred = TinyWorldDegradations.GaussianBlur(clean, 1.0);
            var fc = SubjectFidelity.Score(clean);
            var fb = SubjectFidelity.Score(blurred);
            output.WriteLine($"right column on {bg}: clean {fc.Score:F3}, blur 1: {fb.Score:F3}");
            Assert.True(fc.Score > 0.9, $"{bg} clean: {fc}");
            Assert.True(fb.Score > 0.9, $"{bg} blur 1: {fb}");
        }
        Assert.Equal(16, DemoSubject.RecontextualisationPrompts.Count);
        foreach (var prompt in DemoSubject.RecontextualisationPrompts)
        {
            var r = SceneRequest.Parse(prompt, DemoSubject.Identifier);
            Assert.True(r.IsSubject && r.Shape == DemoSubject.ClassShape, prompt);
            Assert.DoesNotContain(r.Background!.Value, DemoSubject.InstanceBackgrounds);
            Assert.NotNull(r.Position);
        }
        using var img = DemoSubject.Render(0.8, 0.8, 0.15, NamedColor.Red);
        var check = PromptFidelity.Check(img, SceneRequest.Parse("a zwx diamond in the bottom right on a red background", DemoSubject.Identifier));
        Assert.True(check.AllObeyed, check.ToString());
        Assert.NotNull(check.Subject);
        Assert.Equal(0.0, SubjectFidelity.Score(new Image<Rgb24>(64, 64, new Rgb24(40, 90, 230))).Score);
    }
}
