using System.IO.Compression;
using DreamBooth.Imaging.Import;
using DreamBooth.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using static DreamBooth.Tests.Imaging.Import.ImportTestImages;

namespace DreamBooth.Tests.Imaging.Import;

public class InstanceImageImporterTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static readonly ImportOptions Tiny = new() { Resolution = 64 };

    static ImageReport Only(ImportReport report, string fileName) =>
        Assert.Single(report.Images, i => i.SourcePath.EndsWith(fileName, StringComparison.Ordinal));

    [Fact]
    public void GoodImages_AreImportedSquareAtTheResolution_WithCaptionSidecars()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var a = Detailed(640, 480, 1)) SaveJpeg(a, src.File("llmcbrrrqqdpj (1).jpg"));
        using (var b = Detailed(480, 640, 2)) SavePng(b, src.File("llmcbrrrqqdpj (2).png"));
        using (var c = Detailed(300, 300, 3)) c.SaveAsBmp(src.File("llmcbrrrqqdpj (3).bmp"));
        using (var d = Detailed(200, 260, 4)) d.SaveAsWebp(src.File("llmcbrrrqqdpj (4).webp"));

        var report = new InstanceImageImporter(Tiny).Import(src.Path, dst.Path);

        Assert.Equal(4, report.Summary.Imported);
        foreach (var img in report.Images)
        {
            Assert.Equal(ImportStatus.Imported, img.Status);
            Assert.True(File.Exists(img.OutputPath), img.ToText());
            var info = Image.Identify(img.OutputPath);
            Assert.Equal(64, info.Width);
            Assert.Equal(64, info.Height);
            Assert.Equal("llmcbrrrqqdpj", img.Caption);
            Assert.Equal(CaptionSource.FileName, img.CaptionSource);
            Assert.Equal("llmcbrrrqqdpj", File.ReadAllText(img.CaptionPath!));
            Assert.DoesNotContain(img.Issues, i => i.Severity == IssueSeverity.Error);
        }
        Assert.Equal(ImageContainer.Webp, Only(report, "(4).webp").Format);
        Assert.Equal(8, Directory.GetFiles(dst.Path).Length);
    }

    [Fact]
    public void TruncatedJpeg_IsNamedAndSkipped()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        byte[] full;
        using (var a = Detailed(200, 150, 5)) full = JpegBytes(a);
        File.WriteAllBytes(src.File("cut.jpg"), full.AsSpan(0, full.Length * 6 / 10).ToArray());

        var report = new InstanceImageImporter(Tiny).Import(src.File("cut.jpg"), dst.Path);

        var r = Only(report, "cut.jpg");
        Assert.Equal(ImportStatus.Skipped, r.Status);
        var issue = Assert.Single(r.Issues, i => i.Severity == IssueSeverity.Error);
        Assert.Equal(IssueKind.Truncated, issue.Kind);
        Assert.Contains("truncated", issue.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(dst.Path));
        Assert.Contains("cut.jpg", report.ToText(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("png")]
    [InlineData("gif")]
    [InlineData("bmp")]
    [InlineData("webp")]
    public void EveryFormat_CutInHalf_IsSkippedNeverUsed(string ext)
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        byte[] full;
        using (var a = Detailed(120, 90, 8))
        using (var ms = new MemoryStream())
        {
            switch (ext)
            {
                case "png": a.SaveAsPng(ms); break;
                case "gif": a.SaveAsGif(ms); break;
                case "bmp": a.SaveAsBmp(ms); break;
                default: a.SaveAsWebp(ms); break;
            }
            full = ms.ToArray();
        }
        File.WriteAllBytes(src.File("half." + ext), full.AsSpan(0, full.Length / 2).ToArray());

        var r = Only(new InstanceImageImporter(Tiny).Import(src.File("half." + ext), dst.Path), "half." + ext);

        Assert.Equal(ImportStatus.Skipped, r.Status);
        var issue = Assert.Single(r.Issues, i => i.Severity == IssueSeverity.Error);
        Assert.True(issue.Kind is IssueKind.Truncated or IssueKind.Corrupt, issue.ToString());
        Assert.Empty(Directory.GetFiles(dst.Path));
    }

    [Fact]
    public void TextFileNamedPng_IsReportedAsNotAnImage()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        File.WriteAllText(src.File("notes.png"), "shopping list: milk, eggs, bread\n");

        var r = Only(new InstanceImageImporter(Tiny).Import(src.File("notes.png"), dst.Path), "notes.png");

        Assert.Equal(ImportStatus.Skipped, r.Status);
        var issue = Assert.Single(r.Issues);
        Assert.Equal(IssueKind.NotAnImage, issue.Kind);
        Assert.Contains("text", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OneByOnePixelImage_IsSkippedAsTooSmall()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var one = Solid(1, 1, new Rgb24(10, 20, 30))) SavePng(one, src.File("dot.png"));

        var r = Only(new InstanceImageImporter(new ImportOptions { Resolution = 512 }).Import(src.File("dot.png"), dst.Path), "dot.png");

        Assert.Equal(ImportStatus.Skipped, r.Status);
        var issue = Assert.Single(r.Issues, i => i.Severity == IssueSeverity.Error);
        Assert.Equal(IssueKind.TooSmall, issue.Kind);
        Assert.Contains("1x1", issue.Message, StringComparison.Ordinal);
        Assert.Contains("128", issue.Message, StringComparison.Ordinal); // 512 / 4
    }

    [Fact]
    public void SmallImage_IsImportedWithAWarningThatComparesItsSizeToTheResolution()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var a = Detailed(400, 300, 6)) SaveJpeg(a, src.File("small.jpg"));

        var r = Only(new InstanceImageImporter(new ImportOptions { Resolution = 512 }).Import(src.File("small.jpg"), dst.Path), "small.jpg");

        Assert.Equal(ImportStatus.Imported, r.Status);
        var w = Assert.Single(r.Issues, i => i.Kind == IssueKind.TooSmall);
        Assert.Equal(IssueSeverity.Warning, w.Severity);
        Assert.Contains("400x300", w.Message, StringComparison.Ordinal);
        Assert.Contains("512", w.Message, StringComparison.Ordinal);
        Assert.Equal(512, Image.Identify(r.OutputPath).Width);
    }

    [Fact]
    public void PngWhoseHeaderClaims50000Squared_IsRefusedBeforeDecoding()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        File.WriteAllBytes(src.File("bomb.png"), PngClaiming(50000, 50000));

        var r = Only(new InstanceImageImporter(Tiny).Import(src.File("bomb.png"), dst.Path), "bomb.png");

        Assert.Equal(ImportStatus.Skipped, r.Status);
        var issue = Assert.Single(r.Issues);
        Assert.Equal(IssueKind.DecompressionBomb, issue.Kind);
        Assert.Contains("50000x50000", issue.Message, StringComparison.Ordinal);
        Assert.Contains("MaxPixels", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PixelLimits_AreConfigurable()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var a = Detailed(300, 200, 7)) SavePng(a, src.File("a.png"));

        var strict = new InstanceImageImporter(Tiny with { MaxPixels = 50_000 }).Import(src.File("a.png"), dst.Path);
        Assert.Equal(IssueKind.DecompressionBomb, Assert.Single(Only(strict, "a.png").Issues).Kind);
        var loose = new InstanceImageImporter(Tiny).Import(src.File("a.png"), dst.Path);
        Assert.Equal(ImportStatus.Imported, Only(loose, "a.png").Status);
    }

    [Fact]
    public void AnimatedGif_IsImportedAsItsFirstFrame_AndNoted()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var gif = new Image<Rgba32>(80, 80, new Rgba32(220, 20, 20)))
        using (var second = new Image<Rgba32>(80, 80, new Rgba32(20, 20, 220)))
        using (var third = new Image<Rgba32>(80, 80, new Rgba32(20, 220, 20)))
        {
            gif.Frames.AddFrame(second.Frames.RootFrame);
            gif.Frames.AddFrame(third.Frames.RootFrame);
            gif.SaveAsGif(src.File("wave.gif"));
        }

        var r = Only(new InstanceImageImporter(Tiny with { BlurThreshold = 0 }).Import(src.File("wave.gif"), dst.Path), "wave.gif");

        Assert.Equal(ImportStatus.Imported, r.Status);
        var note = Assert.Single(r.Issues, i => i.Kind == IssueKind.Animated);
        Assert.Contains("3 frames", note.Message, StringComparison.Ordinal);
        var p = Pixel(r.OutputPath!, 32, 32);
        Assert.True(p.R > 180 && p.G < 60 && p.B < 60, $"expected the red first frame, got {p}");
    }

    [Fact]
    public void CmykJpeg_IsConvertedToTheRightColours_AndNoted()
    {
        // 48x32 CMYK (Adobe YCCK) JPEG made by ImageMagick 6.9 from rgb(200,30,40) | rgb(30,90,200).
        using var dst = TestPaths.NewTempDir();
        var fixture = Fixture("cmyk-red-blue.jpg");
        Assert.True(File.Exists(fixture), fixture);

        var r = Only(new InstanceImageImporter(Tiny with { CropMode = CropMode.Center, BlurThreshold = 0 }).Import(fixture, dst.Path), "cmyk-red-blue.jpg");

        Assert.Equal(ImportStatus.Imported, r.Status);
        Assert.Contains(r.Issues, i => i.Kind == IssueKind.CmykConverted);
        // Centre crop keeps x 8..40 of 48: left half red, right half blue; resized to 64.
        var left = Pixel(r.OutputPath!, 8, 32);
        var right = Pixel(r.OutputPath!, 56, 32);
        Assert.InRange(left.R, 175, 225); Assert.InRange(left.G, 5, 55); Assert.InRange(left.B, 15, 65);
        Assert.InRange(right.R, 5, 55); Assert.InRange(right.G, 65, 115); Assert.InRange(right.B, 175, 225);
    }

    [Fact]
    public void ZipWithAMix_GivesEveryFileALine_AndStillImportsTheGoodOnes()
    {
        using var tmp = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        var zipPath = tmp.File("photos.zip");
        byte[] good1, good2, truncated;
        using (var a = Detailed(320, 240, 11)) good1 = JpegBytes(a);
        using (var b = Detailed(256, 256, 12)) good2 = PngBytes(b);
        using (var c = Detailed(200, 200, 13)) { var t = JpegBytes(c); truncated = t.AsSpan(0, t.Length / 2).ToArray(); }
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            void Add(string name, byte[] bytes) { using var s = zip.CreateEntry(name).Open(); s.Write(bytes); }
            Add("set/me (1).jpg", good1);
            Add("set/me (1).txt", "photo of llmcbrrrqqdpj person, smiling\n"u8.ToArray());
            Add("set/other_shot.png", good2);
            Add("set/broken.jpg", truncated);
            Add("set/readme.png", "not a picture"u8.ToArray());
            Add("set/bomb.png", PngClaiming(50000, 50000));
            Add("set/lonely.txt", "no image for me"u8.ToArray());
            Add("__MACOSX/set/._me (1).jpg", [0, 5, 22, 7, 0, 2, 0, 0]);
            zip.CreateEntry("set/empty-dir/");
        }

        var report = new InstanceImageImporter(Tiny).Import(zipPath, dst.Path);

        Assert.Equal(7, report.Images.Count);
        var me = Only(report, "set/me (1).jpg");
        Assert.Equal(ImportStatus.Imported, me.Status);
        Assert.Equal("photo of llmcbrrrqqdpj person, smiling", me.Caption);
        Assert.Equal(CaptionSource.Sidecar, me.CaptionSource);
        var other = Only(report, "set/other_shot.png");
        Assert.Equal(ImportStatus.Imported, other.Status);
        Assert.Equal("other shot", other.Caption);
        Assert.Equal(IssueKind.Truncated, Assert.Single(Only(report, "broken.jpg").Issues).Kind);
        Assert.Equal(IssueKind.NotAnImage, Assert.Single(Only(report, "readme.png").Issues).Kind);
        Assert.Equal(IssueKind.DecompressionBomb, Assert.Single(Only(report, "bomb.png").Issues).Kind);
        Assert.Equal(IssueKind.OrphanCaption, Assert.Single(Only(report, "lonely.txt").Issues).Kind);
        Assert.Equal(ImportStatus.Skipped, Only(report, "._me (1).jpg").Status);
        Assert.Equal(2, report.Summary.Imported);
        Assert.True(File.Exists(Path.Combine(dst.Path, "me (1).png")));
        Assert.True(File.Exists(Path.Combine(dst.Path, "other_shot.png")));
        var text = report.ToText();
        output.WriteLine(text);
        foreach (var img in report.Images) Assert.Contains(img.SourcePath, text, StringComparison.Ordinal);
        Assert.Contains("Summary: 2 imported, 5 skipped", text, StringComparison.Ordinal);
        Assert.Contains("only 2 image(s)", text, StringComparison.Ordinal);
        var rows = report.ToRows();
        Assert.Equal(7, rows.Count);
        Assert.Equal(IssueSeverity.Error, rows.Single(r => r.File.EndsWith("bomb.png", StringComparison.Ordinal)).WorstIssue);
        Assert.Equal(2, report.Steps.ImageCount);
    }

    [Fact]
    public void CorruptZip_IsOneClearLine()
    {
        using var tmp = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        File.WriteAllBytes(tmp.File("bad.zip"), [0x50, 0x4B, 0x03, 0x04, 1, 2, 3, 4, 5]);
        var report = new InstanceImageImporter(Tiny).Import(tmp.File("bad.zip"), dst.Path);
        var r = Assert.Single(report.Images);
        Assert.Equal(ImportStatus.Skipped, r.Status);
        Assert.Contains("zip", r.Issues[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFile_GetsALine()
    {
        using var dst = TestPaths.NewTempDir();
        var report = new InstanceImageImporter(Tiny).Import([Path.Combine(dst.Path, "nope.jpg")], dst.Path);
        Assert.Equal(IssueKind.FileNotFound, Assert.Single(Assert.Single(report.Images).Issues).Kind);
    }

    [Fact]
    public void ExifOrientation6_RotatesTheImageUpright()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        // Stored 64x32: left half red, right half blue. Orientation 6 = rotate 90° clockwise to display: red on top.
        using (var img = new Image<Rgb24>(64, 32))
        {
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 64; x++) img[x, y] = x < 32 ? new Rgb24(230, 10, 10) : new Rgb24(10, 10, 230);
            img.Metadata.ExifProfile = new ExifProfile();
            img.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
            SaveJpeg(img, src.File("rotated.jpg"));
        }

        var r = Only(new InstanceImageImporter(Tiny with { CropMode = CropMode.Center, BlurThreshold = 0 }).Import(src.File("rotated.jpg"), dst.Path), "rotated.jpg");

        Assert.Equal(ImportStatus.Imported, r.Status);
        Assert.Equal((32, 64), (r.Width, r.Height));
        Assert.Contains(r.Issues, i => i.Kind == IssueKind.Orientation);
        var top = Pixel(r.OutputPath!, 32, 8);
        var bottom = Pixel(r.OutputPath!, 32, 56);
        Assert.True(top.R > 180 && top.B < 80, $"top should be red, got {top}");
        Assert.True(bottom.B > 180 && bottom.R < 80, $"bottom should be blue, got {bottom}");
    }

    [Fact]
    public void SmartCrop_KeepsTheDetailedSide_CenterCropDoesNot()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        // 300x100: the left two thirds are flat grey, the right third detailed.
        using (var img = Solid(300, 100, new Rgb24(128, 128, 128)))
        using (var detail = Detailed(100, 100, 21))
        {
            for (int y = 0; y < 100; y++)
                for (int x = 0; x < 100; x++) img[200 + x, y] = detail[x, y];
            SavePng(img, src.File("wide.png"));
        }
        using (var img = Solid(90, 270, new Rgb24(40, 90, 160)))
        using (var detail = Detailed(90, 90, 22))
        {
            for (int y = 0; y < 90; y++)
                for (int x = 0; x < 90; x++) img[x, y] = detail[x, y];
            SavePng(img, src.File("tall.png"));
        }

        var smart = new InstanceImageImporter(Tiny with { CropMode = CropMode.Smart }).Import(src.Path, dst.Path);
        // The detailed part is x 200..299 (wide) and y 0..89 (tall); the analysis runs on a <=256 px copy, so allow a few pixels.
        var wide = Only(smart, "wide.png").Crop!;
        Assert.Equal((0, 100), (wide.Y, wide.Size));
        Assert.InRange(wide.X, 192, 200);
        var tall = Only(smart, "tall.png").Crop!;
        Assert.Equal((0, 90), (tall.X, tall.Size));
        Assert.InRange(tall.Y, 0, 8);
        Assert.Contains(Only(smart, "wide.png").Issues, i => i.Kind == IssueKind.ExtremeAspectRatio);

        using var dst2 = TestPaths.NewTempDir();
        var center = new InstanceImageImporter(Tiny with { CropMode = CropMode.Center }).Import(src.Path, dst2.Path);
        Assert.Equal(new CropBox(100, 0, 100), Only(center, "wide.png").Crop);
        Assert.Equal(new CropBox(0, 90, 90), Only(center, "tall.png").Crop);
    }

    [Fact]
    public void ResizedCopy_IsReportedAsANearDuplicate_NamingThePair()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var a = Detailed(600, 400, 31))
        {
            SaveJpeg(a, src.File("a.jpg"));
            using var half = a.Clone(c => c.Resize(300, 200));
            SavePng(half, src.File("b.png"));
        }
        using (var c = Detailed(600, 400, 32)) SaveJpeg(c, src.File("c.jpg"));

        var report = new InstanceImageImporter(Tiny).Import(src.Path, dst.Path);

        var (first, second, d) = Assert.Single(report.Summary.NearDuplicatePairs);
        Assert.EndsWith("a.jpg", first, StringComparison.Ordinal);
        Assert.EndsWith("b.png", second, StringComparison.Ordinal);
        output.WriteLine($"pHash distance resized copy: {d}; unrelated: {PerceptualHash.Distance(Only(report, "a.jpg").PerceptualHash!.Value, Only(report, "c.jpg").PerceptualHash!.Value)}");
        Assert.InRange(d, 0, 10);
        var w = Assert.Single(Only(report, "b.png").Issues, i => i.Kind == IssueKind.NearDuplicate);
        Assert.Contains("a.jpg", w.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Only(report, "c.jpg").Issues, i => i.Kind == IssueKind.NearDuplicate);
        Assert.Contains("near-duplicates", report.ToText(), StringComparison.Ordinal);
    }

    [Fact]
    public void BlurredCopy_IsFlaggedWithItsScore_TheSharpOriginalIsNot()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var a = Detailed(512, 512, 41))
        {
            SavePng(a, src.File("sharp.png"));
            using var blurred = a.Clone(c => c.GaussianBlur(6));
            SavePng(blurred, src.File("soft.png"));
        }

        var report = new InstanceImageImporter(Tiny with { DuplicateHammingThreshold = -1 }).Import(src.Path, dst.Path);

        var sharp = Only(report, "sharp.png");
        var soft = Only(report, "soft.png");
        Assert.DoesNotContain(sharp.Issues, i => i.Kind == IssueKind.Blurry);
        var w = Assert.Single(soft.Issues, i => i.Kind == IssueKind.Blurry);
        output.WriteLine($"sharpness: sharp {sharp.Sharpness:F1}, blurred {soft.Sharpness:F1}");
        Assert.True(soft.Sharpness < 100 && sharp.Sharpness > 100, $"sharp {sharp.Sharpness}, soft {soft.Sharpness}");
        Assert.Contains(soft.Sharpness!.Value.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), w.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExistingDifferentImage_IsNeverOverwritten_AndReimportIsIdempotent()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        using (var a = Detailed(128, 128, 51)) SavePng(a, src.File("me.png"));
        using (var other = Detailed(64, 64, 52)) SavePng(other, dst.File("me.png"));
        var before = File.ReadAllBytes(dst.File("me.png"));
        var importer = new InstanceImageImporter(Tiny);

        var first = Only(importer.Import(src.File("me.png"), dst.Path), "me.png");
        Assert.Equal(dst.File("me (2).png"), first.OutputPath);
        Assert.Contains(first.Issues, i => i.Kind == IssueKind.Renamed);
        Assert.Equal(before, File.ReadAllBytes(dst.File("me.png")));

        var again = Only(importer.Import(src.File("me.png"), dst.Path), "me.png");
        Assert.Equal(dst.File("me (2).png"), again.OutputPath);
        Assert.Contains(again.Issues, i => i.Kind == IssueKind.AlreadyPresent);
        Assert.Equal(2, Directory.GetFiles(dst.Path, "*.png").Length);
    }

    [Fact]
    public void CaptionModes_SidecarWins_FileNameIgnoresSidecars_InstancePromptForAll()
    {
        using var src = TestPaths.NewTempDir();
        using (var a = Detailed(96, 96, 61)) SaveJpeg(a, src.File("llmcbrrrqqdpj (3).jpg"));
        using (var b = Detailed(96, 96, 62)) SaveJpeg(b, src.File("IMG_2034.jpg"));
        File.WriteAllText(src.File("llmcbrrrqqdpj (3).txt"), "llmcbrrrqqdpj person\r\nin a red coat  ");

        using (var dst = TestPaths.NewTempDir())
        {
            var rep = new InstanceImageImporter(Tiny).Import(src.Path, dst.Path);
            var a = Only(rep, "(3).jpg");
            Assert.Equal(("llmcbrrrqqdpj person in a red coat", CaptionSource.Sidecar), (a.Caption, a.CaptionSource));
            var cam = Only(rep, "IMG_2034.jpg");
            Assert.Equal("IMG 2034", cam.Caption);
            Assert.Contains(cam.Issues, i => i.Kind == IssueKind.Caption && i.Message.Contains("camera", StringComparison.Ordinal));
            Assert.Equal("llmcbrrrqqdpj person in a red coat", File.ReadAllText(dst.File("llmcbrrrqqdpj (3).txt")));
        }
        using (var dst = TestPaths.NewTempDir())
        {
            var rep = new InstanceImageImporter(Tiny with { CaptionMode = CaptionMode.FileName }).Import(src.Path, dst.Path);
            Assert.Equal(("llmcbrrrqqdpj", CaptionSource.FileName), (Only(rep, "(3).jpg").Caption, Only(rep, "(3).jpg").CaptionSource));
        }
        using (var dst = TestPaths.NewTempDir())
        {
            var rep = new InstanceImageImporter(Tiny with { CaptionMode = CaptionMode.InstancePrompt, InstancePrompt = "photo of zwx dog" })
                .Import(src.Path, dst.Path);
            Assert.All(rep.Imported, i => Assert.Equal(("photo of zwx dog", CaptionSource.InstancePrompt), (i.Caption, i.CaptionSource)));
        }
    }

    [Fact]
    public void Progress_IsReportedPerFile_AndCancellationStopsBetweenFiles()
    {
        using var src = TestPaths.NewTempDir();
        using var dst = TestPaths.NewTempDir();
        for (int i = 0; i < 3; i++)
            using (var a = Detailed(80, 80, 70 + i)) SavePng(a, src.File($"p{i}.png"));
        var seen = new List<ImportProgress>();
        var progress = new SyncProgress(seen.Add);

        new InstanceImageImporter(Tiny).Import(src.Path, dst.Path, progress);
        Assert.Equal([0, 1, 2, 3], seen.Select(p => p.Completed));
        Assert.All(seen, p => Assert.Equal(3, p.Total));

        using var cts = new CancellationTokenSource();
        using var dst2 = TestPaths.NewTempDir();
        var cancelling = new SyncProgress(p => { if (p.Completed == 1) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => new InstanceImageImporter(Tiny).Import(src.Path, dst2.Path, cancelling, cts.Token));
        Assert.Single(Directory.GetFiles(dst2.Path, "*.png"));
    }

    [Fact]
    public void Options_Validate_NamesTheOptionAndTheFix()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ImportOptions { Resolution = 500 }.Validate());
        Assert.Contains("Resolution", ex.Message, StringComparison.Ordinal);
        Assert.Contains("multiple of 64", ex.Message, StringComparison.Ordinal);
        Assert.Contains("512", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new ImportOptions { Resolution = 0 }.Validate());
        var p = Assert.Throws<ArgumentException>(() => new ImportOptions { CaptionMode = CaptionMode.InstancePrompt }.Validate());
        Assert.Contains("InstancePrompt", p.Message, StringComparison.Ordinal);
        new ImportOptions { Resolution = 64 }.Validate();
        new ImportOptions { Resolution = 768 }.Validate();
        Assert.Throws<ArgumentException>(() => new InstanceImageImporter(new ImportOptions { Resolution = 100 }));
    }

    /// <summary>Progress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    sealed class SyncProgress(Action<ImportProgress> onReport) : IProgress<ImportProgress>
    {
        public void Report(ImportProgress value) => onReport(value);
    }
}
