using DreamBooth.Imaging;

namespace DreamBooth.Tests.Imaging;

public class GenerationParametersTests
{
    [Fact]
    public void ToInfotext_MatchesA1111Layout()
    {
        var p = new GenerationParameters
        {
            Prompt = "a photo of sks dog",
            NegativePrompt = "blurry, lowres",
            Steps = 20,
            Sampler = "Euler a",
            CfgScale = 7,
            Seed = 1234,
            Width = 512,
            Height = 512,
            ModelHash = "abcd",
            ModelName = "name",
            ClipSkip = 2,
        };
        Assert.Equal(
            "a photo of sks dog\nNegative prompt: blurry, lowres\n" +
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abcd, Model: name, Clip skip: 2",
            p.ToInfotext());
    }

    [Fact]
    public void ToInfotext_OmitsEmptyNegativeAndQuotesValuesLikeA1111()
    {
        var p = new GenerationParameters
        {
            Prompt = "castle",
            CfgScale = 7.5,
            Seed = 42,
            Width = 768,
            Height = 512,
            DenoisingStrength = 0.75,
            Extra = [new("Lora hashes", "add_detail: 7c6bad76eb54"), new("Note", "say \"hi\", then\nleave"), new("Version", "v1.10.1")],
        };
        Assert.Equal(
            "castle\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 768x512, Denoising strength: 0.75, " +
            "Lora hashes: \"add_detail: 7c6bad76eb54\", Note: \"say \\\"hi\\\", then\\nleave\", Version: v1.10.1",
            p.ToInfotext());
    }

    public static TheoryData<string, string> TrickyPrompts => new()
    {
        { "a, b, (c:1.2), [d|e]", "x: y, z" },
        { "line one\nline two, with comma\nline \"three\"", "neg one\nneg: two" },
        { "unicode 猫 🐱 café", "" },
        { "", "only negative" },
        { "Steps: 5, Sampler: fake, CFG scale: 1 in the prompt", "Seed: 1, Size: 2x2, Steps: 3" },
    };

    [Theory]
    [MemberData(nameof(TrickyPrompts))]
    public void Infotext_RoundTripsOurOwnOutput(string prompt, string negative)
    {
        var p = new GenerationParameters
        {
            Prompt = prompt,
            NegativePrompt = negative,
            Steps = 37,
            Sampler = "DPM++ 2M Karras",
            CfgScale = 6.5,
            Seed = 3053867395,
            Width = 640,
            Height = 384,
            ModelHash = "6ce0161689",
            ModelName = "my model, v2: final",
            ClipSkip = 2,
            DenoisingStrength = 0.3,
            Extra = [new("Schedule type", "Karras"), new("Weird", "\"quoted\""), new("Tabs and-slashes/x", "a\tb, c\\d"), new("Empty", "")],
        };
        var text = p.ToInfotext();
        var back = GenerationParameters.Parse(text);
        Assert.Equal(p, back);
        Assert.Equal(text, back.ToInfotext());
    }

    [Fact]
    public void Parse_RealisticA1111Infotext_WithHiresAndVersion()
    {
        const string text =
            "masterpiece, best quality, a photo of sks dog in a bucket\n" +
            "Negative prompt: lowres, bad anatomy, bad hands, text, error\n" +
            "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 3053867395, Size: 512x768, Model hash: 6ce0161689, " +
            "Model: v1-5-pruned-emaonly, Denoising strength: 0.7, Clip skip: 2, Hires upscale: 2, Hires steps: 10, " +
            "Hires upscaler: Latent, Version: v1.6.0";
        var p = GenerationParameters.Parse(text);
        Assert.Equal("masterpiece, best quality, a photo of sks dog in a bucket", p.Prompt);
        Assert.Equal("lowres, bad anatomy, bad hands, text, error", p.NegativePrompt);
        Assert.Equal(30, p.Steps);
        Assert.Equal("DPM++ 2M Karras", p.Sampler);
        Assert.Equal(7.5, p.CfgScale);
        Assert.Equal(3053867395L, p.Seed);
        Assert.Equal((512, 768), (p.Width, p.Height));
        Assert.Equal("6ce0161689", p.ModelHash);
        Assert.Equal("v1-5-pruned-emaonly", p.ModelName);
        Assert.Equal(0.7, p.DenoisingStrength);
        Assert.Equal(2, p.ClipSkip);
        Assert.Equal(["Hires upscale", "Hires steps", "Hires upscaler", "Version"], p.Extra.Select(e => e.Key));
        Assert.Equal("Latent", p.GetExtra("Hires upscaler"));
        // Our writer reproduces this infotext byte for byte (same key order as A1111's create_infotext).
        Assert.Equal(text, p.ToInfotext());
    }

    [Fact]
    public void Parse_NewerA1111Infotext_WithScheduleTypeAndQuotedHashes()
    {
        const string text =
            "portrait of a woman, <lora:add_detail:0.5>, (detailed face:1.2)\r\n" +
            "Negative prompt: (worst quality:1.4), (low quality:1.4), easynegative\r\n" +
            "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 1234567890, Size: 768x512, " +
            "Model hash: e6bb9ea85b, Model: realisticVisionV51, " +
            "Lora hashes: \"add_detail: 7c6bad76eb54\", TI hashes: \"easynegative: c74b4e810b03, badhandv4: 5e40d722fc3d\", Version: v1.10.1\r\n";
        var p = GenerationParameters.Parse(text);
        Assert.Equal("portrait of a woman, <lora:add_detail:0.5>, (detailed face:1.2)", p.Prompt);
        Assert.Equal("(worst quality:1.4), (low quality:1.4), easynegative", p.NegativePrompt);
        Assert.Equal("DPM++ 2M", p.Sampler);
        Assert.Equal("Karras", p.GetExtra("Schedule type"));
        Assert.Equal(6, p.CfgScale);
        Assert.Equal("realisticVisionV51", p.ModelName);
        Assert.Equal("add_detail: 7c6bad76eb54", p.GetExtra("Lora hashes"));
        Assert.Equal("easynegative: c74b4e810b03, badhandv4: 5e40d722fc3d", p.GetExtra("TI hashes"));
        Assert.Null(p.ClipSkip);
        Assert.Null(p.DenoisingStrength);
        // "Schedule type" goes back between Sampler and CFG scale, as A1111 writes it.
        Assert.Equal(text.Replace("\r\n", "\n").TrimEnd('\n'), p.ToInfotext());
    }

    [Fact]
    public void Parse_MultilinePromptWithoutNegative_AndOldStyleKeys()
    {
        const string text =
            "a castle on a hill,\n  sunset, highly detailed  \n" +
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Face restoration: CodeFormer, Size: 512x512, Model hash: 45dee52b, ENSD: 31337";
        var p = GenerationParameters.Parse(text);
        Assert.Equal("a castle on a hill,\nsunset, highly detailed", p.Prompt); // lines are stripped, like A1111
        Assert.Equal("", p.NegativePrompt);
        Assert.Equal(965400086, p.Seed);
        Assert.Equal("45dee52b", p.ModelHash);
        Assert.Null(p.ModelName);
        Assert.Equal(["Face restoration", "ENSD"], p.Extra.Select(e => e.Key));
        Assert.Equal(text.Replace("\n  sunset, highly detailed  \n", "\nsunset, highly detailed\n"), p.ToInfotext());
    }

    [Fact]
    public void ToInfotext_PlacesSlottedExtrasWhereA1111Does()
    {
        var p = new GenerationParameters
        {
            Prompt = "x",
            Extra = [new("Version", "v1.9.0"), new("Hires steps", "10"), new("ENSD", "31337"), new("Schedule type", "Karras")],
        };
        Assert.Equal(
            "x\nSteps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: -1, Size: 512x512, ENSD: 31337, Hires steps: 10, Version: v1.9.0",
            p.ToInfotext());
    }

    [Fact]
    public void Parse_TextWithoutParameterLine_IsAllPrompt()
    {
        var p = GenerationParameters.Parse("just a prompt\nNegative prompt: bad\nSteps: 12, Sampler: DDIM");
        // only two pairs on the last line: A1111 treats it as part of the (negative) prompt
        Assert.Equal("just a prompt", p.Prompt);
        Assert.Equal("bad\nSteps: 12, Sampler: DDIM", p.NegativePrompt);
        Assert.Equal(20, p.Steps);
        Assert.Empty(p.Extra);
    }

    [Fact]
    public void Parse_BadKnownValue_NamesTheKey()
    {
        var ex = Assert.Throws<FormatException>(() =>
            GenerationParameters.Parse("p\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"));
        Assert.Contains("Steps", ex.Message);
        Assert.Contains("many", ex.Message);
        var ex2 = Assert.Throws<FormatException>(() =>
            GenerationParameters.Parse("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: big"));
        Assert.Contains("Size", ex2.Message);
        Assert.False(GenerationParameters.TryParse("p\nSteps: 20, Sampler: Euler, CFG scale: x, Seed: 1", out var none));
        Assert.Null(none);
    }

    [Fact]
    public void Validate_RejectsBadValuesAndExtraKeys()
    {
        Assert.Contains("Steps", Assert.Throws<ArgumentException>(() => new GenerationParameters { Steps = 0 }.Validate()).Message);
        Assert.Contains("Seed", Assert.Throws<ArgumentException>(() =>
            new GenerationParameters { Extra = [new("Seed", "1")] }.Validate()).Message);
        Assert.Throws<ArgumentException>(() => new GenerationParameters { Extra = [new("bad:key", "1")] }.Validate());
        new GenerationParameters { Extra = [new("Hires upscaler", "Latent")] }.Validate();
    }
}
