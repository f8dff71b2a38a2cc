using DreamBooth.TinyWorld;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Tests.TinyWorld;

public class TinyWorldDatasetTests
{
    internal static bool SamePixels(Image<Rgb24> a, Image<Rgb24> b)
    {
        if (a.Width != b.Width || a.Height != b.Height) return false;
        for (var y = 0; y < a.Height; y++)
            for (var x = 0; x < a.Width; x++)
                if (!a[x, y].Equals(b[x, y])) return false;
        return true;
    }

    [Fact]
    public void SameSeedGivesIdenticalScenesCaptionsAndPixels()
    {
        var a = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 42, Count = 40 });
        var b = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 42, Count = 40 });
        for (var i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i], b[i]);
            using var ia = a[i].Render();
            using var ib = b[i].Render();
            Assert.True(SamePixels(ia, ib), $"sample {i} differs between two datasets with the same seed");
        }
        // Random access gives the same sample as enumeration.
        Assert.Equal(a.ToList()[17], a[17]);
    }

    [Fact]
    public void DifferentSeedGivesDifferentSamples()
    {
        var a = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 1, Count = 40 });
        var b = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 2, Count = 40 });
        var differentCaptions = Enumerable.Range(0, 40).Count(i => a[i].Caption != b[i].Caption);
        Assert.True(differentCaptions > 30, $"only {differentCaptions}/40 captions differ between seeds 1 and 2");
        var differentPixels = Enumerable.Range(0, 40).Count(i =>
        {
            using var ia = a[i].Render();
            using var ib = b[i].Render();
            return !SamePixels(ia, ib);
        });
        Assert.True(differentPixels > 35, $"only {differentPixels}/40 images differ between seeds 1 and 2");
    }

    [Fact]
    public void CaptionsNameEveryAttributeAndParseBack()
    {
        var ds = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 3, Count = 400 });
        var vocab = TinyWorldVocabulary.AllWords.ToHashSet();
        foreach (var s in ds)
        {
            var words = TinyWorldCaptions.Tokenize(s.Caption);
            var sc = s.Scene;
            Assert.Contains(sc.Count == ObjectCount.Two ? TinyWorldVocabulary.Plural(sc.Shape) : TinyWorldVocabulary.Noun(sc.Shape), words);
            Assert.Contains(TinyWorldVocabulary.Word(sc.Color), words);
            Assert.Contains(TinyWorldVocabulary.Word(sc.Size), words);
            Assert.Contains(TinyWorldVocabulary.Word(sc.Background), words);
            Assert.Contains("background", words);
            Assert.Contains(TinyWorldVocabulary.Phrase(sc.Position), s.Caption);
            if (sc.Count == ObjectCount.Two) Assert.Contains("two", words);
            Assert.All(words, w => Assert.Contains(w, vocab));
            Assert.NotEqual(sc.Color, sc.Background);
            Assert.Equal(SceneRequest.From(sc), SceneRequest.Parse(s.Caption));
        }
        Assert.Contains(ds, s => s.Scene.Count == ObjectCount.Two);
        Assert.Contains(ds, s => s.Caption.StartsWith("a picture of", StringComparison.Ordinal));
        Assert.Contains(ds, s => s.Caption.Contains("background with", StringComparison.Ordinal));
        Assert.Contains(ds, s => s.Caption.Contains(" an orange ", StringComparison.Ordinal) || s.Caption.StartsWith("an orange", StringComparison.Ordinal));
    }

    [Fact]
    public void PartialCaptionsNameOnlyTheirParts()
    {
        var ds = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 5, Count = 300, PartialCaptionProbability = 1 });
        var partial = 0;
        foreach (var s in ds)
        {
            var r = SceneRequest.Parse(s.Caption);
            Assert.Equal(s.Scene.Shape, r.Shape);
            Assert.True(r.Color is null || r.Color == s.Scene.Color, s.Caption);
            Assert.True(r.Background is null || r.Background == s.Scene.Background, s.Caption);
            Assert.True(r.Position is null || r.Position == s.Scene.Position, s.Caption);
            Assert.True(r.Size is null || r.Size == s.Scene.Size, s.Caption);
            if (r.Color is null || r.Background is null || r.Position is null || r.Size is null) partial++;
        }
        Assert.True(partial > 250, $"only {partial}/300 captions are partial");
        var scene = new TinyWorldScene(ShapeKind.Diamond, NamedColor.Red, ObjectSize.Large, GridPosition.Top, NamedColor.Blue);
        Assert.Equal("a diamond", TinyWorldCaptions.PartialCaption(scene, CaptionParts.None));
        Assert.Equal("an orange background with a large red diamond at the top",
            (scene with { Background = NamedColor.Orange }).Caption(CaptionTemplate.BackgroundWithObject));
    }

    [Fact]
    public void HeldOutCombinationsNeverAppearInTrainSplit()
    {
        var train = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 11, Count = 3000 });
        Assert.DoesNotContain(train, s => TinyWorldDataset.IsHeldOut(s.Scene));
        var trainPairs = train.Select(s => (s.Scene.Shape, s.Scene.Background)).ToHashSet();
        Assert.Equal(5 * 8 - TinyWorldDataset.HeldOutPairs.Count, trainPairs.Count); // every other pair is trained
        var heldOut = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = 11, Count = 500, Split = TinyWorldSplit.HeldOut });
        Assert.All(heldOut, s => Assert.True(TinyWorldDataset.IsHeldOut(s.Scene)));
        Assert.Equal(TinyWorldDataset.HeldOutPairs.ToHashSet(), heldOut.Select(s => (s.Scene.Shape, s.Scene.Background)).ToHashSet());
        var trainCaptions = train.Select(s => s.Caption).ToHashSet();
        Assert.DoesNotContain(heldOut, s => trainCaptions.Contains(s.Caption));
    }

    [Fact]
    public void RendersAtConfigurableSizes()
    {
        var scene = new TinyWorldScene(ShapeKind.Triangle, NamedColor.Yellow, ObjectSize.Large, GridPosition.BottomRight, NamedColor.Black);
        foreach (var size in new[] { 32, 64, 128 })
        {
            using var img = scene.Render(size);
            Assert.Equal(size, img.Width);
            Assert.Equal(size, img.Height);
            Assert.Equal(new Rgb24(25, 25, 25), img[0, 0]);
            Assert.Equal(new Rgb24(245, 225, 40), img[size * 8 / 10, size * 8 / 10 + size / 20]);
            var m = TinyWorldMeasurements.Measure(img);
            Assert.Equal((ShapeKind?)ShapeKind.Triangle, m.Shape);
            Assert.Equal((GridPosition?)GridPosition.BottomRight, m.Position);
            Assert.Equal((ObjectSize?)ObjectSize.Large, m.Size);
        }
        // Anti-aliasing: the edge of a circle has intermediate colours.
        using var circle = new TinyWorldScene(ShapeKind.Circle, NamedColor.White, ObjectSize.Large, GridPosition.Center, NamedColor.Black).Render();
        var greys = Enumerable.Range(0, 64).Select(x => circle[x, 30].R).Count(v => v > 30 && v < 240);
        Assert.InRange(greys, 2, 6);
    }

    [Fact]
    public void InvalidOptionsAndScenesFailWithTheirName()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TinyWorldDataset(new TinyWorldDatasetOptions { ImageSize = 4 }));
        Assert.Equal("ImageSize", e.ParamName);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new TinyWorldDataset(new TinyWorldDatasetOptions { ScaleJitter = 0.5 }));
        Assert.Equal("ScaleJitter", e.ParamName);
        var scene = new TinyWorldScene(ShapeKind.Circle, NamedColor.Red, ObjectSize.Small, GridPosition.Center, NamedColor.Red);
        var ae = Assert.Throws<ArgumentException>(() => scene.Render());
        Assert.Contains("Background", ae.Message);
    }

    [Fact]
    public void ObjectsStayInsideTheImageAndInTheirCell()
    {
        foreach (var position in Enum.GetValues<GridPosition>())
            foreach (var size in Enum.GetValues<ObjectSize>())
                foreach (var count in Enum.GetValues<ObjectCount>())
                    foreach (var j in new[] { -0.04, 0.04 })
                    {
                        var scene = new TinyWorldScene(ShapeKind.Square, NamedColor.Red, size, position, NamedColor.Blue, count)
                        { JitterX = j, JitterY = j, JitterScale = 1.08 };
                        var p = TinyWorldGeometry.Placements(scene);
                        Assert.Equal(count == ObjectCount.Two ? 2 : 1, p.Count);
                        Assert.All(p, o => Assert.True(o.CenterX - o.HalfExtent >= -1e-9 && o.CenterX + o.HalfExtent <= 1 + 1e-9
                            && o.CenterY - o.HalfExtent >= -1e-9 && o.CenterY + o.HalfExtent <= 1 + 1e-9, $"{scene} leaves the image"));
                        var cx = p.Average(o => o.CenterX);
                        var cy = p.Average(o => o.CenterY);
                        Assert.Equal(TinyWorldGeometry.Column(position), (int)(cx * 3));
                        Assert.Equal(TinyWorldGeometry.Row(position), (int)(cy * 3));
                    }
    }

    [Fact]
    public void VocabularyListsEveryAttributeWord()
    {
        var v = TinyWorldVocabulary.AllWords;
        Assert.Equal(v.Distinct().Count(), v.Count);
        foreach (var s in Enum.GetValues<ShapeKind>()) { Assert.Contains(TinyWorldVocabulary.Noun(s), v); Assert.Contains(TinyWorldVocabulary.Plural(s), v); }
        foreach (var c in TinyWorldPalette.All) Assert.Contains(TinyWorldVocabulary.Word(c), v);
        foreach (var w in new[] { "small", "large", "top", "bottom", "left", "right", "center", "background", "two", "a", "an" }) Assert.Contains(w, v);
        Assert.DoesNotContain(DemoSubject.Identifier, v);
    }
}
